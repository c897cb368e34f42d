#!/usr/bin/env python3
"""Set up mmattn's virtual environment, then run the demo or the tests.

Standard library only: runs with any ``python3`` (>= 3.8) on a machine that
has nothing but Python 3 and pip.

Usage::

    python3 tools/bootstrap.py demo  [args for tools/quick_start.py]
    python3 tools/bootstrap.py test  [args for pytest]
    python3 tools/bootstrap.py setup          # only set up and verify

What it does:

1. creates the virtual environment (``<repo>/.venv``) if it is missing;
2. installs, in this order: requirements/build.txt (setuptools<82, wheel,
   ninja, numpy, torch), mmengine, mmcv (compiled from its sdist with
   ``MMCV_WITH_OPS=1 --no-build-isolation``), mmdet, requirements/runtime.txt,
   requirements/tests.txt and requirements/seg.txt (MMSegmentation, the
   ``seg`` extra: the demo's segmentation run and tests/test_seg need it),
   and mmattn itself
   (``pip install --no-build-isolation -e .``);
3. verifies the result: ``pkg_resources`` importable, mmcv at the pinned
   version WITH its compiled ops (``from mmcv.ops import nms`` and one call),
   mmdet, mmseg (with ``mmseg.utils``, which needs ftfy and regex) and mmattn
   importable (mmattn from this checkout);
4. writes a stamp file into the venv holding a hash of the requirement
   files, setup.py and this script. While the stamp matches, later runs skip
   all pip work and only repeat the import check (a few seconds).

Environment variables:

``MMATTN_VENV``         venv path to use instead of ``<repo>/.venv``
``MMATTN_PYTHON``       interpreter that creates the venv (default: this one
                        if it is Python 3.11, else ``python3.11`` from PATH)
``MMATTN_FORCE_SETUP``  ``1`` ignores the stamp and redoes every pip step
``MMATTN_VERBOSE``      ``1`` echoes pip's output (it always goes to a log)
``MAX_JOBS``            parallel compile jobs for mmcv (default: CPU count)

Exit status: that of the demo or of pytest; 1 when setup fails; 2 on bad usage
or a missing entry point. pytest's "no tests collected" (5) is reported as a
failure, so CI never passes on zero tests.
"""
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

if sys.version_info < (3, 8):
    sys.exit('tools/bootstrap.py needs Python >= 3.8, this is %s'
             % sys.version.split()[0])

ROOT = Path(__file__).resolve().parent.parent
REQ_DIR = ROOT / 'requirements'
STAMP_NAME = '.mmattn-bootstrap.json'
LOG_DIR_NAME = 'mmattn-logs'
# Files whose content decides whether the environment must be re-installed.
STAMP_INPUTS = ('setup.py', 'tools/bootstrap.py')
HEARTBEAT_S = 60  # how often a long pip step prints a progress line
TAIL_LINES = 40  # lines of a failed command's log shown on the console

USAGE = """\
usage: python3 tools/bootstrap.py {demo,test,setup} [args...]

  demo [args]   set up the environment, then run tools/quick_start.py [args]
  test [args]   set up the environment, then run pytest on tests/ [args]
  setup         only set up and verify the environment

Environment: MMATTN_VENV (venv path, default <repo>/.venv), MMATTN_PYTHON,
MMATTN_FORCE_SETUP=1, MMATTN_VERBOSE=1, MAX_JOBS. See the module docstring.
"""


class BootstrapError(Exception):
    """A setup failure; the message tells the user what went wrong and how to
    fix it."""


# --------------------------------------------------------------------------
# Console helpers
# --------------------------------------------------------------------------
def say(msg=''):
    print('[bootstrap] ' + msg if msg else '', flush=True)


def fmt_s(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return '%ds' % seconds
    return '%dm%02ds' % divmod(seconds, 60)


def cmd_str(cmd, env_extra=None):
    prefix = ''
    if env_extra:
        prefix = ' '.join('%s=%s' % (k, shlex.quote(v))
                          for k, v in env_extra.items()) + ' '
    return prefix + ' '.join(shlex.quote(str(c)) for c in cmd)


def tail(path, n=TAIL_LINES):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            lines = f.readlines()
    except OSError:
        return ''
    return ''.join(lines[-n:])


def last_line(path):
    """Last non-empty line of a log, shortened, for progress lines."""
    for line in reversed(tail(path, 5).splitlines()):
        line = line.strip()
        if line:
            return line if len(line) <= 100 else line[:97] + '...'
    return ''


# --------------------------------------------------------------------------
# Requirements
# --------------------------------------------------------------------------
def req_name(req):
    name = req
    for sep in ' <>=!~;[@':
        name = name.split(sep, 1)[0]
    return name.strip().lower()


def read_reqs(fname):
    """Requirement lines of requirements/<fname>, comments stripped."""
    path = REQ_DIR / fname
    if not path.is_file():
        raise BootstrapError('missing %s' % path)
    reqs = []
    for line in path.read_text(encoding='utf-8').splitlines():
        line = line.split('#', 1)[0].strip()
        if line and not line.startswith('-'):
            reqs.append(line)
    return reqs


def mm_pins():
    """{name: requirement} from requirements/mminstall.txt."""
    pins = {req_name(r): r for r in read_reqs('mminstall.txt')}
    for name in ('mmengine', 'mmcv', 'mmdet'):
        if name not in pins:
            raise BootstrapError('requirements/mminstall.txt has no %s line'
                                 % name)
    return pins


def pinned_version(req):
    """'2.1.0' for 'mmcv==2.1.0'; None when not an exact pin."""
    if '==' in req:
        return req.split('==', 1)[1].split(';', 1)[0].strip()
    return None


def stamp_hash(venv):
    """Hash of everything that decides what the venv must contain."""
    h = hashlib.sha256()
    files = sorted(REQ_DIR.glob('*.txt')) + [ROOT / p for p in STAMP_INPUTS]
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(b'\0')
        h.update(path.read_bytes() if path.is_file() else b'<missing>')
        h.update(b'\0')
    # An editable install points at one checkout: a venv shared between two
    # checkouts (MMATTN_VENV) must be re-installed when used from the other.
    h.update(str(ROOT).encode())
    h.update(str(venv).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------
# The virtual environment
# --------------------------------------------------------------------------
def venv_dir():
    env = os.environ.get('MMATTN_VENV')
    path = Path(env).expanduser() if env else ROOT / '.venv'
    return Path(os.path.abspath(str(path)))


def venv_python(venv):
    if os.name == 'nt':
        return venv / 'Scripts' / 'python.exe'
    return venv / 'bin' / 'python'


def py_version(python):
    out = subprocess.run(
        [str(python), '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        universal_newlines=True)
    if out.returncode != 0:
        return None
    major, minor = out.stdout.strip().split('.')
    return int(major), int(minor)


def base_python():
    """Interpreter that creates the venv. The stack is tested on Python 3.11
    (the local torch 2.13.0 CPU wheel is cp311); torch 2.13 needs >= 3.10."""
    env = os.environ.get('MMATTN_PYTHON')
    if env:
        return env
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which('python3.11')
    if found:
        return found
    if sys.version_info >= (3, 10):
        say('WARNING: Python 3.11 not found, creating the venv with Python '
            '%d.%d (the stack is tested on 3.11)' % sys.version_info[:2])
        return sys.executable
    raise BootstrapError(
        'torch 2.13 needs Python >= 3.10, this is Python %d.%d and no '
        'python3.11 is on PATH.\nInstall Python 3.11 (e.g. `apt-get install '
        'python3.11 python3.11-venv`) and rerun, or point MMATTN_PYTHON at '
        'a Python >= 3.10.' % sys.version_info[:2])


VENV_HELP = (
    "Python's venv/ensurepip modules are missing. On Debian/Ubuntu install "
    'them with:\n    apt-get install python3-venv   (or python3.X-venv for '
    'your Python version)\nthen rerun this command.')


def ensure_venv(venv):
    python = venv_python(venv)
    if python.exists():
        return False
    if venv.exists() and any(venv.iterdir()):
        raise BootstrapError(
            '%s exists but is not a virtual environment (no %s).\nDelete it '
            'or set MMATTN_VENV to another path.' % (venv, python))
    base = base_python()
    check = subprocess.run([base, '-c', 'import venv, ensurepip'],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if check.returncode != 0:
        raise BootstrapError(VENV_HELP)
    created_dir = not venv.exists()
    res = subprocess.run([base, '-m', 'venv', str(venv)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    if res.returncode != 0 or not python.exists():
        if created_dir:
            shutil.rmtree(str(venv), ignore_errors=True)
        raise BootstrapError('`%s -m venv %s` failed:\n%s\n%s'
                             % (base, venv, res.stdout.strip(), VENV_HELP))
    return True


class VenvLock:
    """Exclusive lock so two bootstraps never pip-install into one venv at
    once (POSIX only; a no-op elsewhere)."""

    def __init__(self, venv):
        self.path = venv / '.mmattn-bootstrap.lock'
        self.fh = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.fh = open(str(self.path), 'w')
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            say('another bootstrap is using %s, waiting for it...'
                % self.path.parent)
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fh is not None:
            self.fh.close()  # closing releases the flock


# --------------------------------------------------------------------------
# Probing what is installed in the venv
# --------------------------------------------------------------------------
# Runs INSIDE the venv. Never raises: reports a JSON dict on its last line.
PROBE = r'''
import json, os, sys, warnings
warnings.simplefilter('ignore')
deep, root = sys.argv[1] == '1', sys.argv[2]
out = {'python': sys.version.split()[0], 'dists': {}}
try:
    from importlib import metadata
    for name in ('torch', 'setuptools', 'numpy', 'mmengine', 'mmcv',
                 'mmcv-full', 'mmcv-lite', 'mmdet', 'mmsegmentation', 'mmattn',
                 'pytest'):
        try:
            out['dists'][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
except Exception as e:
    out['metadata_error'] = repr(e)

def attempt(key, fn):
    try:
        fn()
        out[key] = None
    except BaseException as e:
        out[key] = '%s: %s' % (type(e).__name__, e)

def pkg_resources_check():
    import pkg_resources  # noqa: F401  (mmengine's mmdet:: configs need it)
attempt('pkg_resources_error', pkg_resources_check)

def ext_check():
    import importlib.util
    out['mmcv_ext'] = importlib.util.find_spec('mmcv._ext') is not None
if 'mmcv' in out['dists']:
    attempt('mmcv_ext_error', ext_check)

if deep:
    def ops_check():
        import torch
        from mmcv.ops import nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                              [20., 20., 30., 30.]])
        scores = torch.tensor([0.9, 0.8, 0.7])
        _, keep = nms(boxes, scores, 0.5)
        assert keep.tolist() == [0, 2], keep.tolist()
    attempt('mmcv_ops_error', ops_check)

    def mmdet_check():
        import mmdet  # asserts compatible mmcv/mmengine versions
    attempt('mmdet_error', mmdet_check)

    def mmseg_check():
        import mmseg.utils  # asserts mmcv/mmengine versions; needs ftfy, regex
    attempt('mmseg_error', mmseg_check)

    def mmattn_check():
        import mmattn
        path = os.path.realpath(mmattn.__file__)
        out['mmattn_file'] = path
        want = os.path.realpath(root) + os.sep
        if not path.startswith(want):
            raise ImportError('mmattn imported from %s, not from %s'
                              % (path, root))
    attempt('mmattn_error', mmattn_check)
print(json.dumps(out))
'''


def probe(python, deep):
    res = subprocess.run([str(python), '-c', PROBE, '1' if deep else '0',
                          str(ROOT)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, cwd=str(ROOT))
    lines = res.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BootstrapError('could not inspect the venv (%s):\n%s%s'
                             % (python, res.stdout, res.stderr))


def mmcv_fix_help(python, mmcv_req):
    pip = cmd_str([python, '-m', 'pip'])
    return (
        'Fix: rebuild mmcv with its ops (torch, numpy, wheel, ninja and '
        'setuptools<82 must already be in the venv):\n'
        '    {pip} uninstall -y mmcv mmcv-full mmcv-lite\n'
        '    {pip} cache remove mmcv   # drop a cached wheel built '
        'without ops\n'
        '    MMCV_WITH_OPS=1 {pip} install --no-build-isolation {req}\n'
        'or just rerun this script, which does the same.'
    ).format(pip=pip, req=mmcv_req)


def problems(state, pins, python):
    """Human-readable problems in a deep probe; empty when all is well."""
    errs = []
    dists = state['dists']
    if state.get('pkg_resources_error'):
        errs.append('`import pkg_resources` fails (%s): setuptools %s is too '
                    'new; mmcv and mmengine need setuptools<82 '
                    '(pip install "setuptools>=77,<82").'
                    % (state['pkg_resources_error'],
                       dists.get('setuptools', '(none)')))
    for stale in ('mmcv-full', 'mmcv-lite'):
        if stale in dists:
            errs.append('%s %s is installed next to mmcv and shadows it; '
                        'uninstall it.' % (stale, dists[stale]))
    want = pinned_version(pins['mmcv'])
    have = dists.get('mmcv')
    if have is None:
        errs.append('mmcv is not installed.')
    elif want and have != want:
        errs.append('mmcv %s is installed, %s is required.' % (have, want))
    elif not state.get('mmcv_ext'):
        errs.append('mmcv %s is installed WITHOUT its compiled ops '
                    '(no mmcv._ext): it was built without torch in the build '
                    'environment (pip build isolation) or without '
                    'MMCV_WITH_OPS=1.\n%s'
                    % (have, mmcv_fix_help(python, pins['mmcv'])))
    elif state.get('mmcv_ops_error'):
        errs.append('mmcv.ops does not work: %s\n(an mmcv built against '
                    'another torch version gives "undefined symbol" '
                    'errors.)\n%s' % (state['mmcv_ops_error'],
                                      mmcv_fix_help(python, pins['mmcv'])))
    if state.get('mmdet_error'):
        errs.append('`import mmdet` fails: %s' % state['mmdet_error'])
    if state.get('mmseg_error'):
        errs.append('`import mmseg.utils` fails: %s\n(install the seg extra: '
                    'pip install -r requirements/seg.txt)'
                    % state['mmseg_error'])
    if state.get('mmattn_error'):
        errs.append('`import mmattn` fails: %s\n(reinstall with `pip '
                    'install --no-build-isolation -e .` from %s)'
                    % (state['mmattn_error'], ROOT))
    return errs


# --------------------------------------------------------------------------
# Running pip
# --------------------------------------------------------------------------
class Installer:
    def __init__(self, venv):
        self.venv = venv
        self.python = venv_python(venv)
        self.log_dir = venv / LOG_DIR_NAME
        self.log_dir.mkdir(exist_ok=True)
        self.verbose = os.environ.get('MMATTN_VERBOSE') == '1'

    def run(self, log_name, cmd, env_extra=None, allow_fail=False):
        """Run cmd with its output going to <venv>/mmattn-logs/<log_name>;
        print a progress line every HEARTBEAT_S seconds. On failure raise
        BootstrapError with the command and the tail of its output."""
        log_path = self.log_dir / log_name
        env = dict(os.environ)
        env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
        env['PYTHONUNBUFFERED'] = '1'
        env.update(env_extra or {})
        start = time.time()
        next_beat = start + HEARTBEAT_S
        with open(str(log_path), 'w', encoding='utf-8') as log:
            log.write('$ %s\n' % cmd_str(cmd, env_extra))
            log.flush()
            proc = subprocess.Popen(
                [str(c) for c in cmd], cwd=str(ROOT), env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.verbose else log,
                stderr=subprocess.STDOUT, universal_newlines=True)
            try:
                if self.verbose:
                    for line in proc.stdout:
                        log.write(line)
                        sys.stdout.write('    | ' + line)
                    proc.wait()
                else:
                    while True:
                        try:
                            proc.wait(timeout=2)
                            break
                        except subprocess.TimeoutExpired:
                            pass
                        if time.time() >= next_beat:
                            next_beat += HEARTBEAT_S
                            say('    ... %s elapsed | %s'
                                % (fmt_s(time.time() - start),
                                   last_line(log_path)))
            except KeyboardInterrupt:
                proc.terminate()
                proc.wait()
                raise
        if proc.returncode != 0 and not allow_fail:
            raise BootstrapError(
                'command failed (exit %d):\n    %s\n--- last lines of %s ---'
                '\n%s--- end of log ---'
                % (proc.returncode, cmd_str(cmd, env_extra), log_path,
                   tail(log_path)))
        return proc.returncode

    def pip(self, log_name, *args, **kwargs):
        return self.run(log_name,
                        [self.python, '-m', 'pip', *args], **kwargs)

    def pip_install(self, log_name, *args, **kwargs):
        return self.pip(log_name, 'install', '--progress-bar', 'off', *args,
                        **kwargs)


class Steps:
    """Numbered steps, each printed with its duration."""

    def __init__(self, total):
        self.total, self.n = total, 0

    def __call__(self, title, fn, *args):
        self.n += 1
        say('[%d/%d] %s' % (self.n, self.total, title))
        start = time.time()
        result = fn(*args)
        note = result if isinstance(result, str) else 'done'
        say('      %s (%s)' % (note, fmt_s(time.time() - start)))
        return result


def mmcv_ok(state, want):
    return (state['dists'].get('mmcv') == want and state.get('mmcv_ext')
            and not state.get('mmcv_ops_error'))


def install_mmcv(inst, pins):
    """Install mmcv from source with its ops, unless a working one is there.

    A plain `pip install mmcv` builds in an isolated env without torch and so
    silently WITHOUT ops; hence MMCV_WITH_OPS=1 and --no-build-isolation
    (torch & co. are installed by the build-requirements step). pip caches
    the built wheel, so later installs of the same version take seconds.
    """
    req = pins['mmcv']
    want = pinned_version(req)
    state = probe(inst.python, deep=False)
    dists = state['dists']
    for stale in ('mmcv-full', 'mmcv-lite'):
        if stale in dists:  # they shadow mmcv's files (mmdetection#11636)
            say('      uninstalling %s %s (conflicts with mmcv)'
                % (stale, dists[stale]))
            inst.pip('uninstall-%s.log' % stale, 'uninstall', '-y', stale)
    have = dists.get('mmcv')
    if have is not None:
        if have == want and state.get('mmcv_ext'):
            state = probe(inst.python, deep=True)
            if not state.get('mmcv_ops_error'):
                return 'mmcv %s with ops already installed' % have
            reason = 'its ops do not load (%s)' % state['mmcv_ops_error']
        elif have != want:
            reason = 'version %s, want %s' % (have, want)
        else:
            reason = 'it was built WITHOUT ops (no mmcv._ext)'
        say('      removing installed mmcv %s: %s' % (have, reason))
        inst.pip('uninstall-mmcv.log', 'uninstall', '-y', 'mmcv')

    max_jobs = os.environ.get('MAX_JOBS') or str(cpu_count())
    env_extra = {'MMCV_WITH_OPS': '1', 'MAX_JOBS': max_jobs}
    log = inst.log_dir / 'mmcv-build.log'
    say('      building %s with ops from source, ~10-15 min on 2 cores '
        "(seconds if pip's wheel cache already has it), MAX_JOBS=%s, log: %s"
        % (req, max_jobs, log))
    inst.pip_install(log.name, '--no-build-isolation', req,
                     env_extra=env_extra)
    built = 'Building wheel for mmcv' in tail(log, 10 ** 6)
    state = probe(inst.python, deep=True)
    if not mmcv_ok(state, want) and not built:
        # pip installed a wheel from its cache that is broken: built without
        # ops, or against another torch. Drop it from the cache and compile.
        say("      the wheel from pip's cache has no working ops; removing "
            'it from the cache and compiling (log: %s)' % log)
        inst.pip('uninstall-mmcv.log', 'uninstall', '-y', 'mmcv')
        inst.pip('cache-remove-mmcv.log', 'cache', 'remove', 'mmcv',
                 allow_fail=True)
        inst.pip_install(log.name, '--no-build-isolation', req,
                         env_extra=env_extra)
        built = 'Building wheel for mmcv' in tail(log, 10 ** 6)
        state = probe(inst.python, deep=True)
    if not mmcv_ok(state, want):
        raise BootstrapError('\n'.join(problems(state, pins, inst.python)))
    return 'mmcv %s with ops installed (%s)' % (
        want, 'compiled from source' if built else "from pip's wheel cache")


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def full_setup(venv, pins):
    inst = Installer(venv)
    steps = Steps(7)
    req = lambda name: str(REQ_DIR / name)  # noqa: E731

    steps('build requirements (requirements/build.txt: setuptools<82, '
          'wheel, ninja, numpy, torch)',
          inst.pip_install, 'build-reqs.log', '-r', req('build.txt'))
    steps('%s' % pins['mmengine'],
          inst.pip_install, 'mmengine.log', pins['mmengine'])
    steps('%s with ops (MMCV_WITH_OPS=1, --no-build-isolation)' % pins['mmcv'],
          install_mmcv, inst, pins)
    # mmdet's wheel does not depend on mmcv/mmengine, so this pulls neither.
    steps('%s' % pins['mmdet'], inst.pip_install, 'mmdet.log', pins['mmdet'])
    # mmsegmentation's wheel does not depend on mmcv either.
    steps('runtime, test and segmentation requirements',
          inst.pip_install, 'runtime-test-reqs.log',
          '-r', req('runtime.txt'), '-r', req('tests.txt'),
          '-r', req('seg.txt'))
    # install_requires has no mmcv, so this never builds mmcv.
    steps('mmattn (pip install --no-build-isolation -e .)',
          inst.pip_install, 'mmattn.log', '--no-build-isolation', '-e',
          str(ROOT))

    def verify():
        state = probe(inst.python, deep=True)
        errs = problems(state, pins, inst.python)
        if errs:
            raise BootstrapError('verification failed:\n- '
                                 + '\n- '.join(errs))
        d = state['dists']
        return ('python %s, torch %s, mmengine %s, mmcv %s (ops OK), '
                'mmdet %s, mmseg %s, setuptools %s' % (
                    state['python'], d.get('torch'), d.get('mmengine'),
                    d.get('mmcv'), d.get('mmdet'), d.get('mmsegmentation'),
                    d.get('setuptools')))

    steps('verify (pkg_resources, mmcv.ops.nms, mmdet, mmseg, mmattn)',
          verify)
    # Record exactly what was installed, for bug reports.
    inst.run('pip-freeze.txt', [inst.python, '-m', 'pip', 'freeze'],
             allow_fail=True)


def setup_env():
    """Make sure the venv is complete; return its python."""
    venv = venv_dir()
    t0 = time.time()
    if ensure_venv(venv):
        say('created virtual environment %s (%s)'
            % (venv, fmt_s(time.time() - t0)))
    python = venv_python(venv)
    pins = mm_pins()
    stamp_path = venv / STAMP_NAME
    digest = stamp_hash(venv)
    with VenvLock(venv):
        force = os.environ.get('MMATTN_FORCE_SETUP') == '1'
        stamp = {}
        if stamp_path.is_file() and not force:
            try:
                stamp = json.loads(stamp_path.read_text(encoding='utf-8'))
            except ValueError:
                stamp = {}
        if stamp.get('hash') == digest:
            state = probe(python, deep=True)
            errs = problems(state, pins, python)
            if not errs:
                say('environment %s is up to date (quick check %s)'
                    % (venv, fmt_s(time.time() - t0)))
                return python
            # First line of each problem only: the fix is what follows.
            say('environment %s looks broken, setting it up again:\n  - %s'
                % (venv, '\n  - '.join(e.splitlines()[0] for e in errs)))
        elif force:
            say('MMATTN_FORCE_SETUP=1: redoing all install steps')
        say('setting up %s (logs in %s)' % (venv, venv / LOG_DIR_NAME))
        if stamp_path.exists():
            stamp_path.unlink()  # never leave a stale stamp after a failure
        full_setup(venv, pins)
        stamp_path.write_text(json.dumps({
            'hash': digest,
            'root': str(ROOT),
            'setup_seconds': round(time.time() - t0, 1),
            'finished': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        }, indent=2) + '\n', encoding='utf-8')
        say('environment ready (%s)' % fmt_s(time.time() - t0))
    return python


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------
def run_demo(python, args):
    script = ROOT / 'tools' / 'quick_start.py'
    if not script.is_file():
        say('ERROR: %s does not exist; the demo entry point is missing from '
            'this checkout.' % script)
        return 2
    cmd = [str(python), str(script)] + args
    say('running: %s' % cmd_str(cmd))
    return subprocess.call(cmd, cwd=str(ROOT))


def run_tests(python, args):
    if not (ROOT / 'tests').is_dir():
        say('ERROR: %s does not exist; there are no tests to run.'
            % (ROOT / 'tests'))
        return 2
    cmd = [str(python), '-m', 'pytest', 'tests'] + args
    say('running: %s' % cmd_str(cmd))
    rc = subprocess.call(cmd, cwd=str(ROOT))
    if rc == 5:
        say('ERROR: pytest collected no tests (exit code 5). Treating this '
            'as a failure: a test run that runs nothing must not pass.')
    return rc


def main(argv):
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(USAGE, end='')
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command not in ('demo', 'test', 'setup'):
        print('unknown command %r\n\n%s' % (command, USAGE), end='',
              file=sys.stderr)
        return 2
    if command == 'setup' and args:
        print('setup takes no arguments\n\n' + USAGE, end='', file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        python = setup_env()
    except BootstrapError as e:
        say('SETUP FAILED after %s:\n%s' % (fmt_s(time.time() - t0), e))
        return 1
    except KeyboardInterrupt:
        say('interrupted')
        return 130
    try:
        if command == 'demo':
            return run_demo(python, args)
        if command == 'test':
            return run_tests(python, args)
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
