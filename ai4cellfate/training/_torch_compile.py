"""The autoencoder's forward pass and losses under ``torch.compile`` (PyTorch).

An eager PyTorch training step of the preprint's networks runs about 2,100
ATen operations of ~10 us each on a 2-core CPU; its arithmetic is a few
milliseconds. With the autoencoder's part compiled (forward and backward
through AOTAutograd, kernels by Inductor), stage-2 steps ran 1.2-1.4x faster.
The discriminator's loss is compiled as a second graph
(:meth:`CompiledLosses.discriminator_loss`, its draws made before the call in
the same way), and Adam's update of all variables as a third
(:meth:`CompiledLosses.apply_gradients`: one fused kernel instead of Keras'
20-odd ``torch._foreach_*`` passes over the 54 variables, about 0.2 against
1.1 ms a step) where the optimizer is Keras' plain Adam.

What compilation needs, and how it is met here:

* **No random draws inside the graph.** Every noise and dropout layer draws
  from its own seeded generator (:func:`ai4cellfate._random.torch_generator`),
  which a graph cannot do. :class:`CompiledLosses` makes the same draws before
  each call, layer by layer from the same seed states and in the same shapes,
  and passes them in; inside, each such layer adds (or applies) its draw. The
  numbers are the eager step's, so only float rounding can differ.
* **No NumPy at trace time.** MS-SSIM's blur matrices come from
  ``_torch_ops.constant``'s cache, filled by one eager loss call on the first
  batch before compiling.
* **One graph** (``fullgraph=True``). Anything that would split it raises at
  the first call instead; so does a missing C++ compiler. Either way the
  failure is reported in a warning and training goes on eagerly, with the
  draws already made (:attr:`CompiledLosses.error` says why). So is a network
  whose draws cannot be made outside (a random layer without a replay here).
"""

from __future__ import annotations

import types
import warnings

import keras
import torch

from .._random import torch_generator
from . import _graph, _torch_layers

__all__ = ["CompiledLosses", "BACKEND"]

#: ``torch.compile``'s backend when none is given.
BACKEND = "inductor"


def _noise_layers(nets):
    """``[(layer, kind, shape_without_batch), ...]`` for the layers of
    ``nets`` that draw random numbers in training, in the order a forward
    pass calls them, or None when one is not covered (a layer with a seed
    generator but no kernel of ``_torch_layers`` that draws), or a network
    that ``_graph.forward`` cannot run layer by layer."""
    found = []
    for net in nets:
        plan = _graph._plan(net)
        if plan is None:
            return None
        for node, layer, *_ in plan:
            kernel = _torch_layers.kernel_for(layer)
            shape = tuple(int(s) for s in node.outputs[0].shape[1:])
            if kernel is _torch_layers._gaussian_noise:
                if layer.stddev > 0:
                    found.append((layer, "normal", shape))
            elif kernel is _torch_layers._dropout:
                if 0 < layer.rate < 1:
                    found.append((layer, "uniform", shape))
            elif getattr(layer, "seed_generator", None) is not None:
                return None
    if len({id(layer) for layer, _, _ in found}) != len(found):
        return None  # a layer called twice in one pass: one draw each time
    return found


def _plain_adam(optimizer):
    """Whether ``optimizer`` is Keras' PyTorch Adam, built, without AMSGrad,
    EMA, gradient accumulation, clipping, weight decay or loss scaling: its
    ``apply`` then does only Adam's update and counts the step (given
    variables that ``_adam_slots`` accepts)."""
    from keras.src.backend.torch.optimizers.torch_adam import Adam

    try:
        return (type(optimizer) is Adam and optimizer.built and not optimizer.amsgrad
                and not optimizer.use_ema and not optimizer.gradient_accumulation_steps
                and optimizer.clipnorm is None and optimizer.clipvalue is None
                and optimizer.global_clipnorm is None and not optimizer.weight_decay
                and optimizer.loss_scale_factor is None)
    except AttributeError:  # a Keras version without one of these
        return False


def _adam_slots(optimizer, variables):
    """``(params, momentums, velocities)``: the tensors of ``variables`` and
    of their Adam moments, or None where a variable has a constraint or is
    overwritten by its gradient (Keras' ``apply`` handles those)."""
    if any(v.constraint is not None or getattr(v, "overwrite_with_gradient", True)
           for v in variables):
        return None
    index = optimizer._get_variable_index
    return ([v.value for v in variables],
            [optimizer._momentums[index(v)].value for v in variables],
            [optimizer._velocities[index(v)].value for v in variables])


def _adam_update(params, grads, momentums, velocities, learning_rate, iterations,
                 beta_1, beta_2, epsilon):
    """Keras' ``Adam._parallel_update_step`` (PyTorch), operation for
    operation, on tensors: what :meth:`CompiledLosses.apply_gradients`
    compiles (the moments and the parameters are updated in place)."""
    dtype = params[0].dtype
    lr = learning_rate.to(dtype)
    local_step = (iterations + 1).to(dtype)
    beta_1_power = torch.pow(torch.tensor(beta_1, dtype=dtype), local_step)
    beta_2_power = torch.pow(torch.tensor(beta_2, dtype=dtype), local_step)
    alpha = lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    torch._foreach_mul_(momentums, beta_1)
    torch._foreach_add_(momentums, grads, alpha=1 - beta_1)
    torch._foreach_mul_(velocities, beta_2)
    torch._foreach_add_(velocities, torch._foreach_mul(grads, grads), alpha=1 - beta_2)
    torch._foreach_add_(
        params,
        torch._foreach_div(torch._foreach_mul(momentums, alpha),
                           torch._foreach_add(torch._foreach_sqrt(velocities), epsilon)),
        alpha=-1,
    )


def _fresh(function, name):
    """``function`` with a code object of its own (see ``CompiledLosses``)."""
    code = function.__code__.replace(co_name=name)
    return types.FunctionType(code, function.__globals__, code.co_name)


def _reason(exc):
    """``"Type: first line"`` of the innermost cause of ``exc`` (Dynamo wraps
    a backend's exception in its own)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


class CompiledLosses:
    """``model.autoencoder_losses`` through ``torch.compile``, with the
    random draws made eagerly and passed in.

    Parameters
    ----------
    model : AdversarialAutoencoder
        A built model on the PyTorch backend.
    backend : str or callable, optional
        ``torch.compile``'s backend; default :data:`BACKEND` (Inductor).
        ``"aot_eager"`` needs no C++ compiler (the tests use it).

    Attributes
    ----------
    error : str or None
        Why the step is not compiled (training then runs eagerly, with a
        ``RuntimeWarning`` at the first call), else None.
    calls : int
        Calls so far.
    disc_error : str or None
        Why the discriminator's loss is not compiled (it then runs eagerly,
        with the same draws), else None.
    disc_calls : int
        Calls of :meth:`discriminator_loss` so far.
    update_error : str or None
        Why Adam's update is not compiled (it then runs as Keras runs it),
        else None.
    updates : int
        Updates made by the compiled Adam update so far.
    """

    def __init__(self, model, backend=None):
        self.model = model
        self.backend = backend = BACKEND if backend is None else backend
        self.calls = 0
        nets = (model.encoder, model.decoder, model.discriminator)
        self._noise = _noise_layers(nets)
        self.error = None if self._noise is not None else (
            "a network is not a plain functional model, or has a random layer whose "
            "draws cannot be made outside the graph")
        self._slot = {id(layer): i for i, (layer, _, _) in enumerate(self._noise or [])}
        self._pending = []
        # Plans and kernels resolved here, outside the compiled function: it
        # reads nothing from ``_graph``'s caches, whose size would otherwise
        # be among its guards (another model's fit would recompile it).
        self._programs = [] if self._noise is None else [
            (net, plan, [self.kernel_for(entry[1]) for entry in plan])
            for net in nets for plan in [_graph._plan(net)]]
        # A fresh code object per instance: torch._dynamo keeps compiled
        # code per code object, and each model's guards differ, so models
        # sharing one would count towards its recompilation limit (after 8,
        # Dynamo silently stops compiling that function).
        run = _fresh(CompiledLosses._run, f"_ai4cellfate_losses_{id(self)}")
        self._compiled = torch.compile(types.MethodType(run, self), backend=backend,
                                       fullgraph=True, dynamic=False)
        # The discriminator's update: its own compiled graph, its random
        # layers' draws (once for the prior's pass, once for the latents')
        # made before the call as for the autoencoder's.
        disc_layers = {id(layer) for layer in model.discriminator._flatten_layers()}
        self._disc_slots = [i for i, (layer, _, _) in enumerate(self._noise or [])
                            if id(layer) in disc_layers]
        run_disc = _fresh(CompiledLosses._run_disc, f"_ai4cellfate_disc_{id(self)}")
        self._compiled_disc = torch.compile(types.MethodType(run_disc, self),
                                            backend=backend, fullgraph=True, dynamic=False)
        self.disc_error = self.error
        self.disc_calls = 0
        self.update_error = self.error
        self.updates = 0
        self._slots = (None, None)  # (variable ids, _adam_slots(...))
        self._compiled_update = torch.compile(
            _fresh(_adam_update, f"_ai4cellfate_adam_{id(self)}"), backend=backend,
            fullgraph=True, dynamic=False)

    def _first_call(self, compiled, args, error_attr, what, instead, fallback):
        """``compiled(*args)`` the first time (compiling); where compiling
        fails, the reason goes to ``self.<error_attr>``, a ``RuntimeWarning``
        says ``"torch.compile of <what> failed, so <instead> (same results,
        slower): <reason>"``, and ``fallback()`` is returned instead."""
        try:
            with warnings.catch_warnings():
                # Inductor's own deprecation notices, once per compile
                warnings.filterwarnings("ignore", category=FutureWarning,
                                        module=r"torch\._inductor")
                return compiled(*args)
        except Exception as exc:  # noqa: BLE001 - reported, then the fallback
            reason = _reason(exc)
            setattr(self, error_attr, reason)
            warnings.warn(f"torch.compile of {what} failed, so {instead} (same results, "
                          f"slower): {reason}", RuntimeWarning, stacklevel=3)
            return fallback()

    # -- kernels that replay the draws made before the call ------------------
    def kernel_for(self, layer):
        """``_torch_layers.kernel_for``, with noise and dropout layers
        taking their draw from the call's pre-made ones."""
        slot = self._slot.get(id(layer))
        if slot is None:
            return _torch_layers.kernel_for(layer)
        pending = self._pending
        if self._noise[slot][1] == "normal":
            def add_noise(layer, x, training):
                return x + pending[slot]

            return add_noise

        def drop(layer, x, training):
            rate = float(layer.rate)
            return torch.where(pending[slot] >= rate, x / (1.0 - rate), torch.zeros_like(x))

        return drop

    def draws(self, x, slots=None):
        """The random numbers one forward pass of batch ``x`` draws, in
        order, each from its layer's generator (whose seed state moves on
        as in an eager step); only those of the layers at ``slots`` (indices
        into the random layers) when given."""
        batch = int(x.shape[0])
        out = []
        for layer, kind, shape in (self._noise if slots is None
                                   else [self._noise[i] for i in slots]):
            generator = torch_generator(layer.seed_generator, x.device)
            size = (batch,) + shape
            if kind == "normal":
                out.append(torch.normal(0.0, float(layer.stddev), size=size,
                                        generator=generator, dtype=x.dtype, device=x.device))
            else:
                out.append(torch.rand(size, generator=generator, dtype=x.dtype,
                                      device=x.device))
        return out

    def _runner(self, net, x):
        """``net(x, training=True)`` with this call's draws."""
        for known, plan, kernels in self._programs:
            if known is net:
                return _graph.run(net, plan, kernels, x, True)
        raise ValueError(f"{net.name!r} is not a network of the compiled model")

    def _run(self, x, y, draws):
        """The terms with this call's ``draws``: what is compiled, and what
        runs eagerly (the same draws) where compiling failed."""
        self._pending[:] = draws
        terms = self.model._autoencoder_terms(x, y, self._runner)
        self._pending.clear()
        return terms

    def _run_disc(self, z, prior, draws_real, draws_fake):
        """The discriminator's loss with these draws: what is compiled for
        :meth:`discriminator_loss`, and its eager fallback."""
        def runner(net, x, call):
            pending = [None] * len(self._noise)
            for slot, draw in zip(self._disc_slots, (draws_real, draws_fake)[call]):
                pending[slot] = draw
            self._pending[:] = pending
            return self._runner(net, x)

        loss = self.model._discriminator_terms(z, prior, runner)
        self._pending.clear()
        return loss

    def discriminator_loss(self, z):
        """``model.discriminator_losses(z)`` (``z`` detached), compiled: the
        prior samples and the discriminator's draws are made first, in the
        eager step's order, and passed in."""
        if self.error is not None or self.disc_error is not None:
            return self.model.discriminator_losses(z)
        prior = self.model._prior_samples(z)
        draws_real = self.draws(z, self._disc_slots)
        draws_fake = self.draws(z, self._disc_slots)
        self.disc_calls += 1
        args = (z, prior, draws_real, draws_fake)
        if self.disc_calls > 1:
            return self._compiled_disc(*args)
        return self._first_call(self._compiled_disc, args, "disc_error",
                                "the discriminator's loss", "it runs eagerly",
                                lambda: self._run_disc(*args))

    def __call__(self, x, y):
        """The terms of ``model.autoencoder_losses(x, y)`` (a dict of
        tensors; ``loss`` has a gradient)."""
        self.calls += 1
        if self._noise is None:  # not compilable: the plain eager step
            if self.calls == 1:
                warnings.warn(f"torch.compile of the training step is not used, so training "
                              f"runs eagerly: {self.error}", RuntimeWarning, stacklevel=2)
            return self.model.autoencoder_losses(x, y)
        if self.error is not None:  # compiling failed: eager, same draws
            return self._run(x, y, self.draws(x))
        if self.calls == 1:
            # Fill the constant cache (MS-SSIM's blur matrices) eagerly; the
            # loss of an image with itself moves no state.
            from .. import losses

            with torch.no_grad():
                losses.reconstruction_loss(x[:1], x[:1], window_size=self.model.ssim_window,
                                           form=self.model.ssim_form)
        draws = self.draws(x)
        if self.calls > 1:
            return self._compiled(x, y, draws)
        return self._first_call(self._compiled, (x, y, draws), "error", "the training step",
                                "training runs eagerly", lambda: self._run(x, y, draws))

    def apply_gradients(self, grads, variables):
        """``model.optimizer.apply(grads, variables)``, Adam's update compiled.

        Where the optimizer is Keras' plain Adam (see ``_plain_adam``) the
        update runs as one compiled function of the parameters, gradients,
        moments, learning rate and step count, and the step count moves on as
        Keras moves it; anything else (another optimizer, clipping, a failed
        compile) goes through ``optimizer.apply``. Call it under
        ``torch.no_grad()``.
        """
        optimizer = self.model.optimizer
        slots = None
        if self.error is None and self.update_error is None and _plain_adam(optimizer):
            # The variables' side (constraints, their tensors) is looked at
            # once per variable list: Keras assigns a PyTorch variable in
            # place (``copy_``), so its tensor stays the same object.
            key = tuple(id(v) for v in variables)
            known, slots = self._slots
            if known != key:
                slots = _adam_slots(optimizer, variables)
                self._slots = (key, slots)
        if slots is None:
            optimizer.apply(grads, variables)
            return
        lr = optimizer.learning_rate
        lr = lr.value if isinstance(lr, keras.Variable) else torch.as_tensor(lr)
        params, momentums, velocities = slots
        args = (params, list(grads), momentums, velocities, lr, optimizer.iterations.value,
                float(optimizer.beta_1), float(optimizer.beta_2), float(optimizer.epsilon))
        if self.updates > 0:
            self._compiled_update(*args)
        else:
            self._first_call(self._compiled_update, args, "update_error", "the Adam update",
                             "it runs as Keras runs it",
                             lambda: optimizer.apply(grads, variables))
            if self.update_error is not None:
                return  # Keras' apply counted the step
        self.updates += 1
        optimizer.iterations.assign_add(1)
