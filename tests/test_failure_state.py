"""What is left behind when things go wrong: model files, outputs, temporary
files, signals and the command line's early checks (issue 13, items 6-10).

* a model file is checked before Keras builds its network;
* a fitted estimator whose network-defining parameters were changed is not
  saved under the new ones;
* outputs that cannot be written are found before training, and a model
  trained anyway is saved elsewhere rather than lost;
* one temporary file per destination, and those of killed runs are removed;
* SIGTERM during ``fit`` keeps the model, like Ctrl-C;
* bad ``--seed``, ``--resume`` and ``prepare`` values get the documented exit
  status and say what is wrong.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ai4cellfate
from ai4cellfate import _io, _persistence, cli
from ai4cellfate.cli import main

TINY = ["--param", "stage1_epochs=1", "--param", "min_epochs=1", "--param", "max_epochs=1",
        "--param", "augment=False", "--param", "batch_size=16", "--seed", "0", "-q"]


def _one_error(err):
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, fitted):
    path = tmp_path_factory.mktemp("saved") / "good.keras"
    fitted.save(path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, nuclei):
    """A labelled .npz dataset (X, y) of 64 nuclei."""
    X, y = nuclei
    path = tmp_path_factory.mktemp("data") / "data.npz"
    np.savez(path, X=X, y=y)
    return path


def _rewrite(src, dst, *, meta=None, config=None, drop=(), add=None):
    """Copy the archive ``src`` to ``dst`` with its JSON records changed."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            data = zin.read(name)
            if name == "ai4cellfate.json" and meta is not None:
                record = json.loads(data)
                meta(record)
                data = json.dumps(record)
            if name == "config.json" and config is not None:
                record = json.loads(data)
                config(record)
                data = json.dumps(record)
            zout.writestr(name, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


@pytest.fixture
def no_build(monkeypatch):
    """Fail the test if Keras is asked to build the network of a file."""
    calls = []

    def refuse(path):
        calls.append(path)
        pytest.fail(f"load built the network of {path} before checking its records")

    monkeypatch.setattr(_persistence, "_load_keras", refuse)
    return calls


# --------------------------------------------------------------------------
# Item 6: load checks the file before building; save checks the estimator
# --------------------------------------------------------------------------


def _huge(side):
    def meta(m):
        m["image_shape"] = [side, side, 1]

    def config(c):
        c["config"]["image_shape"] = [side, side, 1]
        c["build_config"]["input_shape"] = [16, side, side, 1]

    return meta, config


def test_load_refuses_a_huge_network_without_building_it(saved, tmp_path, no_build):
    meta, config = _huge(8192)
    crafted = _rewrite(saved, tmp_path / "huge.keras", meta=meta, config=config)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"image_shape .* sides from 4 to 1024 pixels"):
        ai4cellfate.load(crafted)
    assert time.perf_counter() - start < 5
    # config.json alone inflated: it disagrees with ai4cellfate.json
    only_config = _rewrite(saved, tmp_path / "inflated.keras", config=_huge(1000)[1])
    with pytest.raises(ValueError, match=r"records disagree .*fitted image shape"):
        ai4cellfate.load(only_config)
    assert not no_build


def _set(path, value):
    def change(record):
        node = record
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return change


_DELETE = object()

BAD_META = [
    ("missing classes", ("classes",), _DELETE, r"not an ai4cellfate model file: .*lacks classes"),
    ("missing params", ("params",), _DELETE, r"not an ai4cellfate model file: .*lacks params"),
    ("format_version str", ("format_version",), "1", r"format_version .* must be an integer"),
    ("format_version bool", ("format_version",), True, r"format_version .* must be an integer"),
    ("version int", ("ai4cellfate_version",), 3, r"ai4cellfate_version .* must be a string"),
    ("n_epochs str", ("n_epochs",), "3", r"n_epochs .* must be an integer"),
    ("classes dtype object", ("classes_dtype",), "|O", "classes_dtype"),
    ("image_shape 2-d", ("image_shape",), [16, 16], r"image_shape .* must be \[height, width"),
    ("bad layout", ("layout",), "nhwc", "layout must be one of"),
    ("unknown param", ("params", "hidden_units"), 512, "unknown parameters hidden_units"),
    ("invalid param", ("params", "batch_size"), -5, "invalid parameters .*batch_size"),
    ("latent_dim disagrees", ("params", "latent_dim"), 3, r"records disagree .*latent_dim"),
    ("too many classes", ("classes",), list(range(5000)), "5000 classes"),
]


@pytest.mark.parametrize("case,key,value,match", BAD_META, ids=[c[0] for c in BAD_META])
def test_load_refuses_bad_metadata(case, key, value, match, saved, tmp_path, no_build):
    bad = _rewrite(saved, tmp_path / "bad.keras", meta=_set(key, value))
    with pytest.raises(ValueError, match=match):
        ai4cellfate.load(bad)


BAD_CONFIG = [
    ("another network", ("registered_name",), "keras>Sequential", "not ai4cellfate's"),
    ("latent_dim huge", ("config", "latent_dim"), 100_000, "latent_dim .* from 1 to 1024"),
    ("latent_dim float", ("config", "latent_dim"), 2.5, "latent_dim .* must be an integer"),
    ("n_classes disagrees", ("config", "n_classes"), 7, "records disagree .*number of classes"),
    ("lambda disagrees", ("config", "lambda_contra"), 60.0, "records disagree .*lambda_contra"),
    ("huge build batch", ("build_config", "input_shape"), [10**9, 16, 16, 1], "build_config"),
    ("extra layer kwarg", ("config", "batch_input_shape"), [None, 4096, 4096, 1],
     "unexpected network settings .*batch_input_shape"),
    ("channels", ("config", "image_shape"), [16, 16, 500], "1 to 64 channels"),
]


@pytest.mark.parametrize("case,key,value,match", BAD_CONFIG, ids=[c[0] for c in BAD_CONFIG])
def test_load_refuses_bad_network_config(case, key, value, match, saved, tmp_path, no_build):
    bad = _rewrite(saved, tmp_path / "bad.keras", config=_set(key, value))
    with pytest.raises(ValueError, match=match):
        ai4cellfate.load(bad)


def test_load_refuses_plain_keras_files(saved, tmp_path, no_build):
    import keras

    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain = tmp_path / "plain.keras"
    net.save(plain)
    with pytest.raises(ValueError, match="not an ai4cellfate model file"):
        ai4cellfate.load(plain)
    # ... also with an ai4cellfate.json copied from a real model into it
    with zipfile.ZipFile(saved) as zf:
        record = zf.read("ai4cellfate.json")
    forged = tmp_path / "forged.keras"
    _rewrite(plain, forged, add={"ai4cellfate.json": record})
    with pytest.raises(ValueError, match=r"network is 'keras>Sequential'|not ai4cellfate's"):
        ai4cellfate.load(forged)
    assert not no_build


@pytest.mark.parametrize("change,match", [
    (dict(latent_dim=3), "latent_dim is 3 but the network was built with 2"),
    (dict(lambda_contra=0.5), "lambda_contra is 0.5 but the network was built with 6.0"),
    (dict(image_shape=(20, 20)), r"image_shape is \(20, 20\) but the network was built with"),
    (dict(lambda_contra=-1), "lambda_contra must be >= 0"),
    (dict(batch_size="big"), "batch_size must be an integer"),
])
def test_save_refuses_parameters_changed_after_fit(change, match, fitted, tmp_path):
    est = copy.deepcopy(fitted)
    est.set_params(**change)
    with pytest.raises((ValueError, TypeError), match=match):
        est.save(tmp_path / "m.keras")
    assert not list(tmp_path.iterdir())
    with pytest.raises((ValueError, TypeError), match=match):
        _persistence.check_saveable(est)


# --------------------------------------------------------------------------
# Item 8: one temporary file per destination; stale ones are removed
# --------------------------------------------------------------------------


def _watch_weight_writes(monkeypatch, folder):
    """Snapshot ``folder`` whenever Keras opens a weights store; force Keras'
    low-memory path, which writes the weights to a temporary file of its own."""
    saving_lib = pytest.importorskip("keras.src.saving.saving_lib")
    if not hasattr(saving_lib, "is_memory_sufficient"):
        pytest.skip("this Keras has no low-memory saving path")
    snapshots = []
    store = saving_lib.H5IOStore

    class Watched(store):
        def __init__(self, *args, **kwargs):
            snapshots.append(sorted(os.listdir(folder)))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(saving_lib, "is_memory_sufficient", lambda model: False)
    monkeypatch.setattr(saving_lib, "H5IOStore", Watched)
    return snapshots


def test_save_makes_exactly_one_temporary_file(fitted, tmp_path, monkeypatch):
    snapshots = _watch_weight_writes(monkeypatch, tmp_path)
    fitted.save(tmp_path / "m.keras")
    assert snapshots
    for names in snapshots:
        assert len(names) == 1 and names[0].startswith(".m.keras.tmp-"), names
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_command_line_save_makes_one_temporary_file_per_output(fitted, tmp_path,
                                                                monkeypatch):
    snapshots = _watch_weight_writes(monkeypatch, tmp_path)
    out = tmp_path / "m.keras"
    cli._write_model(fitted, {"format": cli.HISTORY_FORMAT}, out, cli.history_path(out))
    assert snapshots
    for names in snapshots:
        assert len(names) == 2, names  # the model's and the history's
        assert sum(n.startswith(".m.keras.tmp-") for n in names) == 1, names
        assert sum(n.startswith(".m.history.json.tmp-") for n in names) == 1, names
    assert sorted(os.listdir(tmp_path)) == ["m.history.json", "m.keras"]
    ai4cellfate.load(out)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_are_removed_by_the_next_write(fitted, tmp_path):
    host = _io._host()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".m.keras.tmp-{_dead_pid()}@{host}-abcd1234.keras",
            "live": f".m.keras.tmp-{sleeper.pid}@{host}-efgh5678.keras",
            "other host": f".m.keras.tmp-{_dead_pid()}@elsewhere{host}-ijkl9012.keras",
            "old other host": f".m.keras.tmp-1@elsewhere{host}-mnop3456.keras",
            "old unnamed": ".m.keras.tmp-qrst7890.keras",
            "new unnamed": ".m.keras.tmp-uvwx1234.keras",
            "another output": f".n.keras.tmp-{_dead_pid()}@{host}-abcd1234.keras",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        two_hours_ago = time.time() - 2 * 3600
        for key in ("old other host", "old unnamed"):
            os.utime(tmp_path / names[key], (two_hours_ago, two_hours_ago))
        fitted.save(tmp_path / "m.keras")
        left = set(os.listdir(tmp_path))
    finally:
        sleeper.kill()
        sleeper.wait()
    removed = {k for k, n in names.items() if n not in left}
    assert removed == {"dead", "old other host", "old unnamed"}
    assert "m.keras" in left


def test_temporary_names_record_the_writer(tmp_path):
    seen = []
    with _io.atomic_path(tmp_path / "x.npz", suffix=".npz") as tmp:
        seen.append(os.path.basename(tmp))
    assert seen[0].startswith(f".x.npz.tmp-{os.getpid()}@{_io._host()}-")
    assert _io._temp_pattern(tmp_path / "x.npz").fullmatch(seen[0])


# --------------------------------------------------------------------------
# Item 7: outputs are checked before training; a trained model is never lost
# --------------------------------------------------------------------------


@pytest.fixture
def no_training(monkeypatch):
    """Record (and stop) any attempt to read data or train."""
    calls = []

    def stop(*args, **kwargs):
        calls.append(kwargs)
        raise cli.CommandError("work started")

    monkeypatch.setattr(cli, "_read_dataset", stop)
    monkeypatch.setattr(cli, "_load_model", stop)
    return calls


def test_fit_output_under_a_file_fails_before_training(dataset, tmp_path, capsys,
                                                       no_training):
    (tmp_path / "afile").write_text("x")
    code = main(["fit", str(dataset), "-o", str(tmp_path / "afile" / "m.keras"), *TINY])
    err = _one_error(capsys.readouterr().err)
    assert code == 1
    assert "cannot write" in err and "afile is not a folder" in err
    assert not no_training


def test_fit_output_in_an_unwritable_folder_fails_before_training(dataset, capsys,
                                                                  no_training):
    folder = "/proc/1"  # not writable, even by root
    if not os.path.isdir(folder) or os.access(folder, os.W_OK):
        pytest.skip("no unwritable folder available")
    code = main(["fit", str(dataset), "-o", f"{folder}/m.keras", *TINY])
    err = _one_error(capsys.readouterr().err)
    assert code == 1 and "without permission to write" in err
    assert not no_training


def test_unwritable_checkpoint_dir_fails_before_training(dataset, tmp_path, capsys,
                                                         no_training):
    (tmp_path / "afile").write_text("x")
    code = main(["fit", str(dataset), "-o", str(tmp_path / "m.keras"), *TINY,
                 "--checkpoint-dir", str(tmp_path / "afile" / "ckpt")])
    err = _one_error(capsys.readouterr().err)
    assert code == 1 and "cannot write" in err and "afile is not a folder" in err
    assert not no_training


def test_predict_output_under_a_file_fails_before_loading(saved, dataset, tmp_path, capsys,
                                                          no_training):
    (tmp_path / "afile").write_text("x")
    code = main(["predict", str(saved), str(dataset), "-o", str(tmp_path / "afile" / "p.csv")])
    assert code == 1 and "is not a folder" in _one_error(capsys.readouterr().err)
    assert not no_training


def test_model_trained_into_a_vanished_folder_is_saved_elsewhere(dataset, tmp_path, capsys,
                                                                monkeypatch):
    out_dir, cwd = tmp_path / "out", tmp_path / "cwd"
    out_dir.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    train = cli._train

    def train_then_break_the_output(*args, **kwargs):
        result = train(*args, **kwargs)
        out_dir.rmdir()
        out_dir.write_text("a file now")  # the output folder is gone
        return result

    monkeypatch.setattr(cli, "_train", train_then_break_the_output)
    code = main(["fit", str(dataset), "-o", str(out_dir / "m.keras"), *TINY])
    err = _one_error(capsys.readouterr().err)
    assert code == 1
    saved_to = list(cwd.glob("ai4cellfate-unsaved-*.keras"))
    assert len(saved_to) == 1, (err, list(cwd.iterdir()))
    assert str(saved_to[0]) in err and f"could not write {out_dir / 'm.keras'}" in err
    assert cli.history_path(saved_to[0]).is_file()
    assert ai4cellfate.load(saved_to[0]).n_epochs_ == 2


# --------------------------------------------------------------------------
# Item 9: SIGTERM during fit is handled like Ctrl-C
# --------------------------------------------------------------------------


def _default_signals():  # pragma: no cover - runs in the child
    # A test runner started in the background ignores SIGINT, and children
    # inherit that; give the child the signal dispositions of a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_fit_keeps_the_model(signum, dataset, tmp_path):
    out, ckpt = tmp_path / "m.keras", tmp_path / "ckpt"
    argv = [sys.executable, "-m", "ai4cellfate.cli", "fit", str(dataset), "-o", str(out),
            "--checkpoint-dir", str(ckpt), "--seed", "0", "-q",
            "--param", "stage1_epochs=1", "--param", "min_epochs=400",
            "--param", "max_epochs=400", "--param", "augment=False",
            "--param", "batch_size=16"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=_default_signals, cwd=tmp_path)
    checkpoint = ckpt / "ai4cellfate-checkpoint.npz"
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists():  # the first epoch has completed
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no epoch completed in time"
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "interrupted after" in stderr and "--resume" in stderr
    assert f"wrote {out}" in stdout
    model = ai4cellfate.load(out)
    assert model.stop_reason_ == "interrupted" and 1 <= model.n_epochs_ < 401
    assert checkpoint.exists()  # kept, for --resume
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_sigterm_handler_is_restored():
    from ai4cellfate.training import loop

    before = signal.getsignal(signal.SIGTERM)
    before_int = signal.getsignal(signal.SIGINT)
    with cli._sigterm_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before
        # Ctrl-C gets the same handler, unless the process ignores or handles it itself.
        assert (signal.getsignal(signal.SIGINT) is not before_int) == (
            before_int is signal.default_int_handler)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert loop._PENDING_INTERRUPT.is_set()  # no fit ran to act on it
    assert signal.getsignal(signal.SIGTERM) is before
    assert signal.getsignal(signal.SIGINT) is before_int
    assert not loop._PENDING_INTERRUPT.is_set()  # withdrawn with the block


def test_a_signal_python_drops_still_stops_the_fit(nuclei, monkeypatch):
    """The SIGTERM of a CI run: raised inside JAX's garbage-collector callback, the
    KeyboardInterrupt was dropped ("Exception ignored in: _xla_gc_callback") and the
    fit went on to max_epochs. The handler's request now stops it at once."""
    import gc

    from ai4cellfate import CellFateAAE
    from ai4cellfate.training import criteria as criteria_module

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: dropped.append(u.exc_type))
    original = criteria_module.StoppingCriteria.on_epoch_end

    def signal_during_a_gc_callback(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:  # the first stage-2 epoch
            def callback(phase, info):
                gc.callbacks.remove(callback)
                signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)

            gc.callbacks.append(callback)
            gc.collect()  # the handler runs in the callback; Python drops its exception

    monkeypatch.setattr(criteria_module.StoppingCriteria, "on_epoch_end",
                        signal_during_a_gc_callback)
    X, y = nuclei
    model = CellFateAAE(stage1_epochs=1, min_epochs=5, max_epochs=5, augment=False,
                        batch_size=16, random_state=0, verbose=0)
    with cli._sigterm_as_interrupt():
        model.fit(X, y)
    assert dropped == [KeyboardInterrupt]  # the interrupt itself was lost...
    assert model.stop_reason_ == "interrupted"  # ...and the fit stopped anyway
    assert model.n_epochs_ == 2  # after the epoch in which the signal came
    from ai4cellfate.training import loop

    assert not loop._PENDING_INTERRUPT.is_set()
    model.fit(X, y)  # a later fit is not interrupted by the old request
    assert model.stop_reason_ != "interrupted" and model.n_epochs_ == 6


# --------------------------------------------------------------------------
# Item 10: messages and exit codes of the command line
# --------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["fit", "{data}", "-o", "{tmp}/m.keras", "--seed", "-1"],
    ["fit", "{data}", "-o", "{tmp}/m.keras", "--seed", str(2**32)],
    ["demo", "-o", "{tmp}/demo", "--quick", "--seed", "-3"],
], ids=["negative", "too large", "demo"])
def test_seed_out_of_range_is_bad_usage_before_any_work(argv, dataset, tmp_path, capsys,
                                                        no_training, monkeypatch):
    backends = []
    monkeypatch.setattr(cli, "_setup_backend", backends.append)
    argv = [a.format(data=dataset, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "--seed must be an integer from 0 to 4294967295" in err
    assert not no_training and not backends
    # the wrong type is bad usage as well (argparse)
    assert main(argv[:-1] + ["1.5"]) == 2
    assert "invalid int value" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _fake_checkpoint(folder, seed):
    from ai4cellfate._checkpoint import checkpoint_path, write_checkpoint

    folder.mkdir()
    write_checkpoint(checkpoint_path(folder), {"random_state": seed, "seed": 123},
                     [np.zeros(2)], [])


def test_resume_with_another_seed_names_the_seeds(dataset, tmp_path, capsys, no_training):
    ckpt = tmp_path / "ckpt"
    _fake_checkpoint(ckpt, 0)
    code = main(["fit", str(dataset), "-o", str(tmp_path / "m.keras"), *TINY[:-3],
                 "--seed", "7", "--checkpoint-dir", str(ckpt), "--resume"])
    err = _one_error(capsys.readouterr().err)
    assert code == 1
    assert "written with --seed 0, not --seed 7" in err and "drop --seed" in err
    assert not no_training


def test_resume_without_a_checkpoint_warns_and_starts_afresh(dataset, tmp_path, capsys,
                                                             monkeypatch):
    calls = []

    def fake_train(data, params, **kwargs):
        calls.append(kwargs)
        raise cli.CommandError("stop after the check")

    monkeypatch.setattr(cli, "_train", fake_train)
    for ckpt in (tmp_path / "empty", tmp_path / "missing"):
        if ckpt.name == "empty":
            ckpt.mkdir()
        main(["fit", str(dataset), "-o", str(tmp_path / "m.keras"), *TINY,
              "--checkpoint-dir", str(ckpt), "--resume"])
        err = capsys.readouterr().err
        assert f"warning: no checkpoint in {ckpt}; starting afresh" in err
        assert calls[-1]["resume"] is False and calls[-1]["seed"] == 0
    assert len(calls) == 2


PREPARE_VALUES = [
    (["--crop-size", "0"], "crop_size must be an integer >= 4"),
    (["--horizon", "0"], "horizon must be None or an integer >= 1"),
    (["--pixel-size", "-1", "--crop-size-um", "10"], "pixel_size must be a positive number"),
    (["--crop-size-um", "-2"], "crop_size_um must be a positive number"),
    (["--percentiles", "50", "10"], "percentiles must satisfy 0 <= low < high <= 100"),
    (["--output-size", "100"], r"output_size (100) must not exceed"),
    (["--sequence", "x1"], "sequence must be a number"),
]


@pytest.mark.parametrize("extra,match", PREPARE_VALUES,
                         ids=[" ".join(c[0]) for c in PREPARE_VALUES])
def test_prepare_invalid_values_exit_2_as_documented(extra, match, tmp_path, capsys):
    (tmp_path / "src").mkdir()
    code = main(["prepare", str(tmp_path / "src"), "-o", str(tmp_path / "d.npz"), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "usage:" in err and match in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_documented_exit_statuses():
    """docs/cli.md lists every exit status main() returns."""
    text = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    section = text.split("## Exit status", 1)[1].split("\n## ", 1)[0]
    for code in ("`0`", "`1`", "`2`", "`130`"):
        assert code in section, code
