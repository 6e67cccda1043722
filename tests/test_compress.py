"""compress/: each step checked against an independent oracle (numpy, TFLM, the .tflite's own tensors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from mcuforge.compress.common import Context, TrainingOptions, fine_tune
from mcuforge.errors import MCUForgeError
from mcuforge.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parent.parent
DIGITS = REPO / "specs" / "digits.yaml"
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _digits_spec(**compress) -> dict:
    data = yaml.safe_load(DIGITS.read_text())
    data["compress"] = compress
    return data


def _weights(data: bytes) -> dict[str, np.ndarray]:
    """Weight tensors (input 1) of the convolution and fully connected ops, by op kind and index."""
    from mcuforge.deploy.tflite_model import parse_tflite

    graph = parse_tflite(data).main
    return {
        f"{op.index}_{op.opcode}": graph.tensor(op.inputs[1]).array() for op in graph.operators if op.opcode in WEIGHT_OPS
    }


def _tflm(data: bytes, x: np.ndarray) -> np.ndarray:
    """Raw int8 outputs of the TFLM host interpreter, sample by sample."""
    from mcuforge.deploy.tflite_model import parse_tflite
    from mcuforge.deploy.tflm import Emulator, prepare_input

    emulator = Emulator(parse_tflite(data), data)
    return emulator.run(prepare_input(x, emulator.inputs[0]))[0]


def _ptq(model, dataset) -> bytes:
    from mcuforge.deploy.convert import convert_model, representative_sample

    return convert_model(model, representative_sample(dataset.x_train, 100, 0))


@pytest.fixture(scope="module")
def context():
    from mcuforge.train.trainer import load_dataset

    spec = load_spec(DIGITS)
    return Context(spec, load_dataset(spec))


@pytest.fixture(scope="module")
def trained(context):
    """The digits tiny_cnn after 3 epochs: enough for weights with structure."""
    from mcuforge.train.trainer import build_model

    model = build_model(context.spec, context.dataset)
    fine_tune(model, context, TrainingOptions(epochs=3, learning_rate=3e-3))
    return model


def _copy(model):
    import tf_keras

    clone = tf_keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


# --- bad input, rejected when the spec loads (before any training) ---------------------------


@pytest.mark.parametrize(
    "compress, message",
    [
        ({"steps": ["distill", "shrink"]}, r"compress\.steps\[1\]: expected one of .*Received: 'shrink'"),
        ({"steps": ["quantize", "cluster"]}, r"cluster after quantize cannot work.*Put cluster before quantize"),
        ({"steps": ["prune", "distill"]}, r"distill after prune cannot work"),
        ({"steps": ["cluster", "prune"]}, r"prune after cluster cannot work"),
        ({"steps": ["prune", "channel_prune"]}, r"channel_prune after prune cannot work"),
        ({"steps": ["prune", "prune"]}, r"compress\.steps\[1\]: step 'prune' appears twice"),
        ({"steps": ["prune"], "options": {"prune": {"sparsity": 1.0}}}, r"prune\.sparsity: expected a value >= 0 and < 1.*Received: 1\.0"),
        ({"steps": ["prune"], "options": {"prune": {"sparsity": -0.1}}}, r"prune\.sparsity: expected a value >= 0.*Received: -0\.1"),
        ({"steps": ["prune"], "options": {"prune": {"pattern": "4:8"}}}, r"prune\.pattern: expected one of unstructured, 2:4"),
        ({"steps": ["prune"], "options": {"prune": {"pattern": "2:4", "sparsity": 0.7}}}, r"prune\.sparsity: pattern 2:4 keeps two of every four"),
        ({"steps": ["prune"], "options": {"prune": {"depthwise": True}}}, r"prune\.depthwise: applies to pattern 2:4 only"),
        ({"steps": ["prune"], "options": {"cluster": {"clusters": 8}}}, r"compress\.options\.cluster: no step 'cluster'"),
        ({"steps": ["cluster"], "options": {"cluster": {"clusters": 1}}}, r"cluster\.clusters: expected a value >= 2"),
        ({"steps": ["distill"], "options": {"distill": {"arch": "autoencoder"}}}, r"distill\.arch: student 'autoencoder' and model\.arch 'tiny_cnn' do different tasks"),
        ({"steps": ["distill"], "options": {"distill": {"temprature": 2}}}, r"compress\.options\.distill\.temprature: unknown key"),
    ],
)
def test_bad_recipes_fail_the_up_front_check(compress, message):
    from mcuforge.pipeline import check_spec

    with pytest.raises(MCUForgeError, match=message):
        check_spec(parse_spec(_digits_spec(**compress)))


def test_default_recipe_is_distill_prune_quantize():
    data = _digits_spec()
    del data["compress"]
    assert parse_spec(data).compress.steps == ["distill", "prune", "quantize"]


def test_teacher_with_other_classes_fails_before_training(tmp_path):
    """A 5-class teacher for the 10 digits: the error comes before anything trains."""
    from mcuforge.compress.pipeline import compress
    from mcuforge.train import zoo

    teacher_path = tmp_path / "teacher.h5"
    zoo.build("tiny_cnn", (8, 8, 1), 5).save(teacher_path)
    spec = parse_spec(_digits_spec(steps=["distill", "quantize"], options={"distill": {"teacher": str(teacher_path)}}))
    with pytest.raises(MCUForgeError, match=r"teacher .*teacher\.h5 predicts 5 classes, but the data set has 10"):
        compress(spec, tmp_path / "build")
    assert not (tmp_path / "build" / "digits" / "train").exists()


def test_reconstruction_teacher_must_reproduce_the_input():
    from mcuforge.compress.distill import check_teacher
    from mcuforge.train import zoo
    from mcuforge.train.datasets import ANOMALY, Dataset

    x = np.zeros((4, 16), np.float32)
    y = np.zeros(4, np.int64)
    data = Dataset("toy", ANOMALY, x, y, x, y, x, y, class_names=["normal"])
    check_teacher(zoo.build("autoencoder", (16,), 0, width=0.1), data, "good.h5")
    with pytest.raises(MCUForgeError, match=r"teacher wide\.h5 outputs shape \(32,\), but the data set's inputs have shape \(16,\)"):
        check_teacher(zoo.build("autoencoder", (32,), 0, width=0.1), data, "wide.h5")


# --- distillation ---------------------------------------------------------------------------


def test_distillation_loss_equals_hand_computation():
    from mcuforge.compress.distill import distillation_loss

    labels = np.array([2, 0])
    teacher = np.array([[1.0, -0.5, 2.0], [0.3, 0.1, -1.2]])
    student = np.array([[0.2, 0.4, 1.0], [1.5, -0.7, 0.0]])
    alpha, temperature = 0.3, 2.0

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    cross_entropy = -np.log(softmax(student)[np.arange(2), labels])
    p_t, p_s = softmax(teacher / temperature), softmax(student / temperature)
    kl = np.sum(p_t * np.log(p_t / p_s), axis=1)
    expected = alpha * cross_entropy + (1 - alpha) * temperature**2 * kl

    y_true = np.concatenate([labels[:, None], teacher], axis=1).astype(np.float32)
    got = distillation_loss(alpha, temperature)(y_true, student.astype(np.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # The second sample, worked by hand: CE = log(e^1.5 + e^-0.7 + 1) - 1.5.
    assert got[1] == pytest.approx(0.3 * (np.log(np.exp(1.5) + np.exp(-0.7) + 1) - 1.5) + 0.7 * 4 * kl[1], rel=1e-5)


def test_distilled_student_is_smaller_and_learns(trained, context):
    from mcuforge.compress.distill import DistillOptions, distill

    student = distill(trained, DistillOptions(width=0.5, epochs=4, learning_rate=3e-3), context)
    assert student.count_params() < trained.count_params() / 2
    accuracy = np.mean(np.argmax(student.predict(context.dataset.x_test, verbose=0), axis=1) == context.dataset.y_test)
    assert accuracy > 0.8  # ten classes: chance is 0.1


# --- pruning --------------------------------------------------------------------------------


def test_sparsity_survives_qat_and_conversion(trained, context):
    """Unstructured 60 %: every weight tensor in the int8 .tflite after prune-preserving QAT keeps its zeros.

    tfmot rounds each layer's count of zeros (conv0 has 144 weights: 86 zeros, 59.7 %).
    """
    from mcuforge.compress.prune import PRUNE, PruneOptions, layer_sparsity, prune
    from mcuforge.compress.quantize import QuantizeOptions, quantize
    from mcuforge.deploy.convert import convert_model, is_quantization_aware

    pruned = prune(_copy(trained), PruneOptions(sparsity=0.6, epochs=2), context)
    assert all(s >= 0.595 for s in layer_sparsity(pruned).values())
    qat = quantize(pruned, QuantizeOptions(epochs=1), Context(context.spec, context.dataset, (PRUNE,)))
    assert is_quantization_aware(qat)
    weights = _weights(convert_model(qat, None))
    assert len(weights) == 3
    for name, w in weights.items():
        assert np.mean(w == 0) >= 0.595, name


def test_two_four_sparsity_in_converted_weights(trained, context):
    """2:4 on layers with input channels in fours: each 4 consecutive input weights hold >= 2 zeros in the .tflite."""
    from mcuforge.compress.prune import PruneOptions, prune

    pruned = prune(_copy(trained), PruneOptions(pattern="2:4", epochs=1), context)
    weights = _weights(_ptq(pruned, context.dataset))
    checked = 0
    for name, w in weights.items():
        if w.shape[-1] % 4:
            continue  # conv0 has one input channel: 2:4 cannot apply
        groups = w.reshape(-1, 4)
        assert np.all(np.sum(groups == 0, axis=1) >= 2), name
        checked += 1
    assert checked == 2


def test_two_four_skips_depthwise_layers(context):
    """DS-CNN: pointwise convolutions get 2:4, the first convolution (one input channel, a 10 x 4 window) 2:4
    along its window, depthwise kernels (unsupported by tfmot's m-by-n) stay dense."""
    import tf_keras

    from mcuforge.compress.prune import PruneOptions, prune
    from mcuforge.train import zoo

    tf_keras.utils.set_random_seed(0)
    model = zoo.build("ds_cnn", context.dataset.input_shape, context.dataset.num_classes, width=0.125, blocks=1)
    pruned = prune(model, PruneOptions(pattern="2:4", epochs=1), context)
    weights = _weights(_ptq(pruned, context.dataset))
    pointwise = [w for name, w in weights.items() if name.endswith("CONV_2D") and not name.endswith("DEPTHWISE_CONV_2D") and w.shape[1:3] == (1, 1)]
    depthwise = [w for name, w in weights.items() if name.endswith("DEPTHWISE_CONV_2D")]
    first = [w for name, w in weights.items() if name.endswith("CONV_2D") and w.shape[1:] == (10, 4, 1)]
    assert len(pointwise) == 1 and len(depthwise) == 1 and len(first) == 1
    assert np.all(np.sum(pointwise[0].reshape(-1, 4) == 0, axis=1) >= 2)
    assert np.all(np.sum(first[0].reshape(-1, 4) == 0, axis=1) >= 2)  # TFLite's [out][h][w][in]: groups in window rows
    assert np.mean(depthwise[0] == 0) < 0.2


def test_depthwise_two_four_mask_keeps_every_channel_alive():
    """Along the channels at each tap, two of each four kept; a channel weakest at every tap (which plain
    top-two would zero whole) keeps its largest tap in place of the weaker kept weight of that group."""
    from mcuforge.compress.prune import two_four_mask

    kernel = np.random.default_rng(7).normal(size=(3, 3, 8, 1))
    kernel[:, :, 5, 0] *= 1e-3  # channel 5: the smallest of its group at all nine taps
    keep = two_four_mask(kernel, depthwise=True).reshape(9, 8)  # TFLite's [h][w][channels]
    assert np.all(keep.reshape(9, 2, 4).sum(axis=-1) == 2)
    assert keep[:, 5].sum() == 1 and keep[np.argmax(np.abs(kernel[:, :, 5, 0]).reshape(9)), 5]
    assert np.all(keep.any(axis=0))
    groups = np.abs(kernel.reshape(9, 2, 4))
    plain = (groups >= np.sort(groups, axis=-1)[..., 2:3]).reshape(9, 8)  # the two largest of each four
    assert np.sum(keep != plain) == 2  # one weight moved within one group


def test_two_four_on_depthwise_layers_when_asked(context):
    """`depthwise: true`: the DS-CNN's depthwise kernel is 2:4 too, each four consecutive output channels of a
    tap ([1][h][w][channels], TFLite's order) holding two zeros at least (one epoch over a few samples: the
    mask is set from the first batch on)."""
    import dataclasses

    import tf_keras

    from mcuforge.compress.prune import PruneOptions, prune
    from mcuforge.train import zoo

    few = Context(context.spec, dataclasses.replace(context.dataset, x_train=context.dataset.x_train[:64],
                                                    y_train=context.dataset.y_train[:64]))
    tf_keras.utils.set_random_seed(0)
    model = zoo.build("ds_cnn", context.dataset.input_shape, context.dataset.num_classes, width=0.125, blocks=1)
    pruned = prune(model, PruneOptions(pattern="2:4", epochs=1, depthwise=True), few)
    (depthwise,) = [w for name, w in _weights(_ptq(pruned, context.dataset)).items() if name.endswith("DEPTHWISE_CONV_2D")]
    assert np.all(np.sum(depthwise.reshape(-1, 4) == 0, axis=1) >= 2)
    assert np.mean(depthwise == 0) < 0.6  # the mask, not a collapse of the weights


# --- channel pruning ------------------------------------------------------------------------


def test_removing_dead_channels_keeps_outputs(trained):
    """Zeroed filters are the least important; removing them must not change a single output."""
    from mcuforge.compress.channel_prune import shrink

    model = _copy(trained)
    for name, count in (("conv0", 8), ("conv1", 16)):
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        dead = np.arange(0, kernel.shape[-1], 2)[:count]
        kernel[..., dead], bias[dead] = 0.0, 0.0
        layer.set_weights([kernel, bias])
    smaller = shrink(model, 0.5)
    assert smaller.get_layer("conv0").filters == 8 and smaller.get_layer("conv1").filters == 16
    assert smaller.get_layer("logits").units == 10
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_pruned_channels_are_gone_from_the_converted_ds_cnn():
    """DS-CNN (conv, depthwise, BatchNorm): half the MACs, and the .tflite's tensors have the smaller shapes."""
    import tf_keras

    from mcuforge.compress.channel_prune import removal_for_macs, shrink
    from mcuforge.deploy.report import layer_rows
    from mcuforge.deploy.tflite_model import parse_tflite
    from mcuforge.train import zoo

    tf_keras.utils.set_random_seed(0)
    model = zoo.build("ds_cnn", (20, 10, 1), 4, width=0.25, blocks=2)
    smaller = shrink(model, removal_for_macs(model, 0.5))
    x = np.random.default_rng(0).normal(size=(32, 20, 10, 1)).astype(np.float32)
    from mcuforge.deploy.convert import convert_model

    before, after = (parse_tflite(convert_model(m, x)) for m in (model, smaller))
    macs_before, macs_after = (sum(r.macs for r in layer_rows(m)) for m in (before, after))
    assert macs_after <= 0.5 * macs_before
    assert macs_after >= 0.35 * macs_before  # the search stops close to the target, not far below
    kept = smaller.get_layer("stem_conv").filters
    assert kept < 16
    shapes = {op.opcode: [] for op in after.main.operators}
    for op in after.main.operators:
        shapes[op.opcode].append(after.main.tensor(op.inputs[1]).shape if op.opcode in WEIGHT_OPS else None)
    assert shapes["CONV_2D"][0] == (kept, 10, 4, 1)  # stem: [out, kh, kw, in]
    assert shapes["DEPTHWISE_CONV_2D"][0] == (1, 3, 3, kept)  # the depthwise follows the stem's channels
    assert shapes["CONV_2D"][1][-1] == kept  # the first pointwise conv reads only the kept channels
    assert shapes["FULLY_CONNECTED"][0] == (4, smaller.get_layer("block1_pw_conv").filters)


def test_residual_adds_prune_both_branches_alike():
    """ResNet-8: the two inputs of every Add keep the same channels, so the rebuilt model runs and converts."""
    import tf_keras

    from mcuforge.compress.channel_prune import shrink
    from mcuforge.train import zoo

    tf_keras.utils.set_random_seed(0)
    model = zoo.build("resnet8", (16, 16, 3), 10, width=0.5)
    smaller = shrink(model, 0.5)
    for stack in range(3):
        add = smaller.get_layer(f"stack{stack}_add")
        widths = {int(t.shape[-1]) for t in add.input}
        assert len(widths) == 1
        assert widths.pop() == int(round(model.get_layer(f"stack{stack}_add").output_shape[-1] * 0.5))
    assert smaller.get_layer("stack0_a_conv").filters == 4
    assert smaller.count_params() < model.count_params() / 2


# --- clustering and LUT compression ---------------------------------------------------------


def test_clusters_compress_below_int8_with_identical_outputs(trained, context):
    from mcuforge.compress.cluster import ClusterOptions, cluster, lut_compress
    from mcuforge.deploy.tflite_model import parse_tflite

    clustered = cluster(_copy(trained), ClusterOptions(clusters=8, epochs=1), context)
    data = _ptq(clustered, context.dataset)
    for name, w in _weights(data).items():
        distinct = max(len(np.unique(channel)) for channel in w)  # axis 0: TFLite's output channels
        assert distinct <= 8, name
    compressed = lut_compress(data)
    assert compressed is not None and len(compressed) < 0.8 * len(data)
    assert "TFLM_DECODE" in parse_tflite(compressed).op_names
    x = context.dataset.x_test
    np.testing.assert_array_equal(_tflm(compressed, x).astype(np.int32), _tflm(data, x).astype(np.int32))


def test_lut_leaves_unclustered_models_alone(trained, context):
    from mcuforge.compress.cluster import lut_compress

    assert lut_compress(_ptq(trained, context.dataset)) is None


def test_cluster_preserving_qat_keeps_the_clusters(trained, context):
    """CQAT keeps <= k values per channel; its per-tensor dense weights LUT-compress with identical TFLM outputs."""
    from mcuforge.compress.cluster import CLUSTER, ClusterOptions, cluster, lut_compress
    from mcuforge.compress.quantize import QuantizeOptions, quantize
    from mcuforge.deploy.convert import convert_model
    from mcuforge.deploy.tflite_model import parse_tflite

    clustered = cluster(_copy(trained), ClusterOptions(clusters=8, epochs=1), context)
    qat = quantize(clustered, QuantizeOptions(epochs=1), Context(context.spec, context.dataset, (CLUSTER,)))
    data = convert_model(qat, None)
    for name, w in _weights(data).items():
        assert max(len(np.unique(channel)) for channel in w) <= 8, name
    graph = parse_tflite(data).main
    dense = [graph.tensor(op.inputs[1]) for op in graph.operators if op.opcode == "FULLY_CONNECTED"]
    assert not dense[0].quantization.per_channel  # QAT quantizes Dense weights per tensor
    compressed = lut_compress(data)
    assert compressed is not None and len(compressed) < len(data)
    x = context.dataset.x_test
    np.testing.assert_array_equal(_tflm(compressed, x).astype(np.int32), _tflm(data, x).astype(np.int32))


# --- the pipeline's guard --------------------------------------------------------------------


def test_accuracy_drop_stops_and_keeps_the_last_output(tmp_path, context, trained):
    """A one-filter student cannot hold the accuracy: the run stops and the old output stays."""
    from mcuforge.compress.pipeline import compress

    data = _digits_spec(
        steps=["distill"], max_accuracy_drop=0.02, options={"distill": {"width": 0.07, "epochs": 1, "compare_with_labels_only": False}}
    )
    spec = parse_spec(data)
    (tmp_path / "digits" / "train").mkdir(parents=True)
    trained.save(tmp_path / "digits" / "train" / "model.h5")
    previous = tmp_path / "digits" / "compress" / "steps.json"
    previous.parent.mkdir(parents=True)
    previous.write_text("last good\n")
    with pytest.raises(MCUForgeError, match=r"compress step distill lost 0\.\d+ accuracy .*max_accuracy_drop=0\.02"):
        compress(spec, tmp_path)
    assert previous.read_text() == "last good\n"
    assert sorted(p.name for p in previous.parent.parent.iterdir()) == ["compress", "train"]  # no staging left


def test_qat_folds_dense_batchnorm_exactly():
    """The autoencoder's Dense -> BatchNorm pairs: folded, the same outputs; after QAT, an all-integer .tflite."""
    import tf_keras
    import tensorflow_model_optimization as tfmot

    from mcuforge.compress.quantize import fold_dense_batchnorm
    from mcuforge.deploy.convert import convert_model
    from mcuforge.deploy.tflite_model import parse_tflite
    from mcuforge.train import zoo

    tf_keras.utils.set_random_seed(0)
    model = zoo.build("autoencoder", (32,), 0, width=0.25, hidden_layers=1, bottleneck=4)
    x = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, x, epochs=2, verbose=0)  # moves BatchNorm's statistics away from the identity
    folded = fold_dense_batchnorm(model)
    assert not any(isinstance(layer, tf_keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    keras_q = tfmot.quantization.keras
    with keras_q.quantize_scope():
        qat = keras_q.quantize_apply(keras_q.quantize_annotate_model(folded))
    converted = parse_tflite(convert_model(qat, None))
    assert converted.is_fully_integer and converted.op_names == ("FULLY_CONNECTED",)


def test_channel_pruning_keeps_an_autoencoders_input_and_output():
    """Dense -> BatchNorm chains shrink; the reconstruction keeps the input's width."""
    import tf_keras

    from mcuforge.compress.channel_prune import shrink
    from mcuforge.train import zoo

    tf_keras.utils.set_random_seed(0)
    model = zoo.build("autoencoder", (32,), 0, width=0.25, hidden_layers=1, bottleneck=8)
    smaller = shrink(model, 0.5)
    assert [smaller.get_layer(f"dense{i}").units for i in range(3)] == [16, 4, 16]
    assert smaller.get_layer("bn0").get_weights()[0].shape == (16,)
    assert smaller.output_shape == model.output_shape == (None, 32)
