"""Both accelerator paths on the project's zoo models, converted to int8 by deploy's converter.

The zoo uses only ops in Coral's supported table and in Vela's NPU set, so the
oracle is: every op maps to the Edge TPU (once the batch is fixed at 1), Vela
leaves no op to the CPU, and Vela's MAC count agrees with deploy.report's
independent count
(Vela adds pooling and softmax work on top). Weights are untrained (seeded): mapping does not depend on them.
"""

import numpy as np
import pytest

from mcuforge.deploy import edgetpu, edgetpu_compiler, npu
from mcuforge.deploy.convert import convert_model
from mcuforge.deploy.report import layer_rows
from mcuforge.deploy.tflite_model import parse_tflite, read_tflite
from mcuforge.train.zoo import build

CASES = [
    pytest.param("tiny_cnn", (8, 8, 1), {}, id="tiny_cnn"),
    pytest.param("gesture_cnn", (32, 32, 1), {}, id="gesture_cnn"),
    pytest.param("ds_cnn", (49, 10, 1), {}, id="ds_cnn", marks=pytest.mark.slow),
    pytest.param("resnet8", (32, 32, 3), {}, id="resnet8", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("arch, shape, options", CASES)
def test_zoo_model_maps_to_the_edgetpu_and_the_npu(arch, shape, options, tmp_path):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = build(arch, shape, 4, **options)
    representative = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
    data = convert_model(model, representative)

    report = edgetpu.check_model(parse_tflite(data, arch))
    assert report.fully_mapped, report.text()
    assert [note.rule for note in report.notes] == ["batch 1"]  # Keras converts with a dynamic batch
    assert edgetpu.check_model(parse_tflite(edgetpu_compiler.static_batch(data), arch)).notes == []

    path = tmp_path / f"{arch}.tflite"
    path.write_bytes(data)
    estimate = npu.compile_for_npu(path, tmp_path / "npu", "ethos-u55-128")
    assert estimate.cpu_ops == 0 and estimate.npu_command_streams == 1
    assert estimate.npu_cycles > 0 and estimate.sram_bytes > 0
    ours = sum(row.macs for row in layer_rows(read_tflite(path)))
    assert ours <= estimate.macs <= 1.05 * ours  # Vela also counts pooling and softmax work, which the report does not
