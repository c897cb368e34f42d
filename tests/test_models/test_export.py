"""ONNX export: every backbone family exports with both of torch's exporters (TorchScript, which
mmdeploy uses, and dynamo) and onnxruntime reproduces the PyTorch outputs (export takes the plain
formulas, see ``mmattn.fused.config.tracing``)."""
import pytest
import torch
from mmdet.models.backbones import ResNet

from mmattn.models import CBAMResNet, ECAResNet, EPSANet, SAResNet, SEResNet, SGEResNet
from perturb import TINY, randomised

pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

FAMILIES = [
    ('resnet', lambda: ResNet(50, **TINY)),
    ('se', lambda: SEResNet(50, **TINY)),
    ('eca', lambda: ECAResNet(50, **TINY)),
    ('sa', lambda: SAResNet(50, groups=8, **TINY)),
    ('cbam', lambda: CBAMResNet(50, **TINY)),
    ('sge', lambda: SGEResNet(50, groups=8, **TINY)),
    ('epsa', lambda: EPSANet(50, conv_groups=(1, 2, 4, 4), psa_reduction=2, **TINY)),
]


@pytest.mark.parametrize('dynamo', [False, True], ids=['torchscript', 'dynamo'])
@pytest.mark.parametrize('name,build', FAMILIES, ids=[f[0] for f in FAMILIES])
def test_onnx_export_matches_onnxruntime(name, build, dynamo, tmp_path):
    if dynamo:
        pytest.importorskip('onnxscript')
    model = randomised(build(), torch.float32)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    path = str(tmp_path / f'{name}.onnx')
    torch.onnx.export(model, (x, ), path, dynamo=dynamo, input_names=['input'])
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    outputs = session.run(None, {'input': x.numpy()})
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert got.shape == tuple(want.shape)
        rel = (torch.from_numpy(got) - want).abs().max() / want.abs().max()
        assert rel <= 1e-4, f'{name}: max relative error {rel:.2e}'
