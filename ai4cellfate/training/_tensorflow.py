"""Train step for the TensorFlow backend."""

import contextlib

import tensorflow as tf


def train_step(model, data):
    x, y = data[0], data[1]
    ae_vars = model.autoencoder_variables
    d_vars = model.discriminator_variables
    with tf.GradientTape() as tape:
        terms = model.autoencoder_losses(x, y)
    ae_grads = tape.gradient(terms["loss"], ae_vars)
    z = tf.stop_gradient(terms["z"])
    with tf.GradientTape() as tape:
        disc = model.discriminator_losses(z)
    d_grads = tape.gradient(disc, d_vars)
    pairs = [(g, v) for g, v in zip(list(ae_grads) + list(d_grads), ae_vars + d_vars)]
    pairs = [(g if g is not None else tf.zeros_like(v), v) for g, v in pairs]
    model.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
    terms["disc_loss"] = disc
    logs = {}
    for name, tracker in model.trackers.items():
        tracker.update_state(terms[name])
        logs[name] = tracker.result()
    return logs


def predict_function(net):
    """``f(x) -> ndarray``: ``net`` in inference mode as one ``tf.function``
    (traced once per batch shape)."""
    run = tf.function(lambda x: net(x, training=False), reduce_retracing=True)

    def predict(x):
        return run(tf.convert_to_tensor(x)).numpy()

    return predict


def cpu_threads():
    """No thread setting to scope on TensorFlow (its pools are fixed at start)."""
    return contextlib.nullcontext()
