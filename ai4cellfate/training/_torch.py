"""Train step for the PyTorch backend."""

import torch


def _grads(loss, variables):
    params = [v.value for v in variables]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [g if g is not None else torch.zeros_like(p) for g, p in zip(grads, params)]


def train_step(model, data):
    x, y = data[0], data[1]
    ae_vars = model.autoencoder_variables
    d_vars = model.discriminator_variables
    terms = model.autoencoder_losses(x, y)
    ae_grads = _grads(terms["loss"], ae_vars)
    disc = model.discriminator_losses(terms["z"].detach())
    d_grads = _grads(disc, d_vars)
    with torch.no_grad():
        model.optimizer.apply(ae_grads + d_grads, ae_vars + d_vars)
    terms["disc_loss"] = disc
    logs = {}
    for name, tracker in model.trackers.items():
        tracker.update_state(terms[name].detach())
        logs[name] = tracker.result()
    return logs
