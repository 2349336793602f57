"""Train step, inference and CPU threads for the PyTorch backend."""

import contextlib
import os

import numpy as np
import torch

#: Intra-op threads used inside fit/transform on CPU. The networks are tiny
#: (about 1 MFLOP per crop), so OpenMP workers mostly spin-wait: with one other
#: busy process on a 2-core machine that made steps up to ~10x slower.
#: ``AI4CELLFATE_TORCH_THREADS`` overrides it (0 keeps torch's own setting).
DEFAULT_THREADS = 1


def _grads(loss, variables):
    params = [v.value for v in variables]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]


def train_step(model, data):
    x, y = data[0], data[1]
    ae_vars = model.autoencoder_variables
    d_vars = model.discriminator_variables
    compiled = getattr(model, "_compiled_losses", None)
    terms = model.autoencoder_losses(x, y) if compiled is None else compiled(x, y)
    ae_grads = _grads(terms["loss"], ae_vars)
    z = terms["z"].detach()
    disc = model.discriminator_losses(z) if compiled is None else compiled.discriminator_loss(z)
    d_grads = _grads(disc, d_vars)
    with torch.no_grad():
        if compiled is None:
            model.optimizer.apply(ae_grads + d_grads, ae_vars + d_vars)
        else:
            compiled.apply_gradients(ae_grads + d_grads, ae_vars + d_vars)
    terms["disc_loss"] = disc
    return _track(model.trackers, terms)


def _track(trackers, terms):
    """``tracker.update_state(terms[name])`` and ``tracker.result()`` for
    the scalar losses, as in-place torch updates of each
    :class:`keras.metrics.Mean`'s ``total`` and ``count`` (Keras' own
    ``update_state`` cost about 0.4 ms a step in argument handling)."""
    logs = {}
    with torch.no_grad():
        for name, tracker in trackers.items():
            total, count = tracker.total.value, tracker.count.value
            total.add_(terms[name].detach().to(total.dtype))
            count.add_(1)
            logs[name] = total / count
    return logs


def predict_function(net):
    """``f(x) -> ndarray``: ``net`` in inference mode without autograd (at
    4,096 crops a call, Keras' per-layer overhead is negligible: running it
    layer by layer measured no faster)."""

    def predict(x):
        with torch.no_grad():
            out = net(torch.from_numpy(np.ascontiguousarray(x)), training=False)
        return out.detach().cpu().numpy()

    return predict


@contextlib.contextmanager
def cpu_threads():
    """Use ``DEFAULT_THREADS`` intra-op threads for the block, then restore.

    Only torch's intra-op thread count of this process is changed, and only
    while ai4cellfate computes; the caller's setting is back afterwards.
    """
    wanted = os.environ.get("AI4CELLFATE_TORCH_THREADS")
    n = DEFAULT_THREADS if wanted in (None, "") else int(wanted)
    before = torch.get_num_threads()
    if n <= 0 or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
