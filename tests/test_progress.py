"""Progress: plain lines in a log, nested bars on a terminal, nothing when quiet; epochs through the Keras callback."""

import io

import numpy as np

from mcuforge.progress import Progress


def test_lines_in_a_log():
    out = io.StringIO()
    progress = Progress(out, terminal=False)
    progress.line("train: running")
    with progress.task("step", 2) as advance:
        advance("prune: accuracy 0.9")
        advance("")
    assert out.getvalue().splitlines() == ["train: running", "step 1/2 prune: accuracy 0.9", "step 2/2"]


def test_quiet_writes_nothing():
    progress = Progress.quiet()
    progress.line("hidden")
    with progress.task("step", 1) as advance:
        advance("hidden")
    assert progress.stream is None


def test_nested_bars_share_one_live_display():
    out = io.StringIO()
    progress = Progress(out, terminal=True)
    with progress.task("compress step", 2) as step:
        with progress.task("fine-tune epoch", 3) as epoch:  # a second live display would raise rich's LiveError
            for _ in range(3):
                epoch("loss=0.1")
        step("prune")
    assert progress._bars is None and "compress step" in out.getvalue()


def test_keras_callback_reports_each_epoch():
    import tf_keras as keras

    from mcuforge.train.trainer import progress_callback

    out = io.StringIO()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 2), np.float32)
    model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[progress_callback(Progress(out, terminal=False), "train epoch", 2)])
    lines = out.getvalue().splitlines()
    assert [line.split(" loss=")[0] for line in lines] == ["train epoch 1/2", "train epoch 2/2"]
