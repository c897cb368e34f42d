"""Random weights for backbone tests: gates that are not near-constant, activations that stay in range."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: a two-stage depth-50 network with narrow stages: every block type (stride 1 and 2, downsample) at a
#: fraction of the cost
TINY = dict(base_channels=16, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1))


def randomised(model, dtype):
    """Random gate parameters and BN affines and statistics, so no gate is near-constant (the official
    inits are); the trunk's convolutions and linear layers keep PyTorch's fan-in scaled init."""
    torch.manual_seed(0)
    model = model.to(dtype)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.running_mean.normal_(0, 0.1)
            elif not (isinstance(module, (nn.Conv2d, nn.Linear)) and module.weight.shape[1] >= 8):
                for p in module.parameters(recurse=False):
                    p.normal_(0.1, 0.3)
    return model
