"""Train step for the JAX backend (stateless).

JAX threads all state through the step: trainable, non-trainable (batch-norm
statistics, spectral-norm vectors, random-seed state), optimizer and metric
variables. The forward passes run inside a ``keras.StatelessScope`` over all
model variables; the new values of the non-trainable ones are read back from
the scope and threaded from the autoencoder pass into the discriminator pass.
One optimizer updates both parameter groups: Adam is per-parameter, so this is
the same update as one Adam for each group.
"""

import contextlib

import jax
import keras
import numpy as np


def _run(model, fn, trainable_values, non_trainable_values):
    mapping = list(zip(model.trainable_variables, trainable_values))
    mapping += list(zip(model.non_trainable_variables, non_trainable_values))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        out = fn()
    new_nt = []
    for v, old in zip(model.non_trainable_variables, non_trainable_values):
        new = scope.get_current_value(v)
        new_nt.append(old if new is None else new)
    return out, new_nt


def train_step(model, state, data):
    trainable, non_trainable, optimizer_vars, metrics_vars = state
    x, y = data[0], data[1]
    ids = {id(v): i for i, v in enumerate(model.trainable_variables)}
    ae_idx = [ids[id(v)] for v in model.autoencoder_variables]
    d_idx = [ids[id(v)] for v in model.discriminator_variables]

    def merged(ae_vals, d_vals):
        vals = list(trainable)
        for i, v in zip(ae_idx, ae_vals):
            vals[i] = v
        for i, v in zip(d_idx, d_vals):
            vals[i] = v
        return vals

    ae_vals = [trainable[i] for i in ae_idx]
    d_vals = [trainable[i] for i in d_idx]

    def ae_fn(ae_v):
        terms, nt = _run(
            model, lambda: model.autoencoder_losses(x, y), merged(ae_v, d_vals), non_trainable
        )
        return terms["loss"], (terms, nt)

    (_, (terms, non_trainable)), ae_grads = jax.value_and_grad(ae_fn, has_aux=True)(ae_vals)
    z = jax.lax.stop_gradient(terms["z"])

    def d_fn(d_v):
        loss, nt = _run(
            model, lambda: model.discriminator_losses(z), merged(ae_vals, d_v), non_trainable
        )
        return loss, nt

    (disc, non_trainable), d_grads = jax.value_and_grad(d_fn, has_aux=True)(d_vals)

    grads = [None] * len(trainable)
    for i, g in zip(ae_idx, ae_grads):
        grads[i] = g
    for i, g in zip(d_idx, d_grads):
        grads[i] = g
    grads = [g if g is not None else jax.numpy.zeros_like(t) for g, t in zip(grads, trainable)]
    trainable, optimizer_vars = model.optimizer.stateless_apply(
        optimizer_vars, grads, trainable
    )

    terms["disc_loss"] = disc
    logs, new_metrics_vars, start = {}, [], 0
    for name, tracker in model.trackers.items():
        n = len(tracker.variables)
        mv = tracker.stateless_update_state(metrics_vars[start : start + n], terms[name])
        logs[name] = tracker.stateless_result(mv)
        new_metrics_vars += list(mv)
        start += n
    return logs, (trainable, non_trainable, optimizer_vars, new_metrics_vars)


def predict_function(net):
    """``f(x) -> ndarray``: ``net`` in inference mode as one jitted call.

    The current weights are passed on every call (so the function follows
    training), and XLA compiles once per batch shape.
    """

    @jax.jit
    def run(trainable, non_trainable, x):
        out, _ = net.stateless_call(trainable, non_trainable, x, training=False)
        return out

    def predict(x):
        return np.asarray(run([v.value for v in net.trainable_variables],
                              [v.value for v in net.non_trainable_variables], x))

    return predict


def cpu_threads():
    """No thread setting to scope on JAX (XLA sizes its own pool)."""
    return contextlib.nullcontext()
