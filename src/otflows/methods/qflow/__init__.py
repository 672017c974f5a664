"""Q-flow: a neural-ODE optimal-transport flow between two distributions known by samples.

Xu, Cheng, Xie, "Computing high-dimensional optimal transport by flow neural networks",
arXiv:2305.11857 (our copy has no appendices).

A time-conditioned velocity f(x, t; θ) transports P (t = 0) to Q (t = 1) by dx/dt = f
(eq. (1)); T_s^t is its solution map (eq. (4)), the reverse map the same ODE backwards.
Implemented here:

* integration on the W₂ grid 0 = t₀ < … < t_K = 1 (uniform), each interval split into S
  fixed RK4 sub-steps (§3.2, ``otflows.ode.rk4``); the inversion error
  ‖T_1^0(T_0^1(x)) − x‖ is reported;
* the initial flow (§3.3): f regressed on the linear interpolant x_t = (1 − t)x₀ + t x₁ of
  independent x₀ ~ P, x₁ ~ Q, target x₁ − x₀ (the stochastic-interpolant / flow-matching
  construction of Albergo & Vanden-Eijnden 2023 cited there);
* the refinement, Algorithm 1: per Iter a P→Q leg then a Q→P leg; each leg first trains its
  classifier (r₁ by the logistic loss (5), r̃₀ by (8)) for E₀ steps (Iter 1 only), then E
  times: one Adam step on θ for L = L_KL + γ L_T (eq. (3)) with L_KL = −mean r₁(T_0^1 X)
  (eq. (6)) (resp. −mean r̃₀(T_1^0 X̃)) and L_T the W₂ cost (7) on the grid, followed by
  E_in classifier steps on the just-pushed samples;
* the Q-flow-ratio net (§4.1): a time-conditioned classifier r(x, s) trained by the logistic
  loss between neighbouring bridge distributions P_{t_{k−1}}, P_{t_k} of a ratio grid of L
  intervals, interval logit h_k r(x, s_k) at the midpoint s_k; then
  log p(x) − log q(x) = −∫₀¹ r(x, s) ds;
* the DRE baselines of §4.2-4.3: one classifier between P and Q ("1 ratio"), TRE over TRE's
  linear-combination waymarks, TRE over Q-flow's own bridge (one head per interval), and
  DRE-∞ (Choi et al. 2022): a time score s(x, t) fitted by time score matching on TRE's
  interpolant (the paper runs DRE-∞ and TRE on the same interpolant, §4.2), then
  log p − log q = −∫₀¹ s dt (midpoint rule, 32 nodes);
* every DRE net's logit family is ``ratio_head``: a SiLU MLP, or quadratic forms (TRE's heads
  for Gaussian problems); the initial flow is kept frozen (``f_initial``) so that its cost and
  MMD² are scored on the evaluation points beside the refined flow's (claim Q3);
* ``grad_checkpoint``: Algorithm 1's backward pass recomputes each grid interval's RK4
  stages instead of keeping them (peak memory of one step ÷ 2.7-2.9, issue 23).

What the missing appendices would have fixed, and our choices (documented once here): an
Algorithm-1 "epoch" is one minibatch step (the harness counts steps); the grid is uniform;
the velocity is an MLP on (x, t) with SiLU activations (width × n_layers); the classifiers
are 2-hidden-layer SiLU MLPs; E_in is 20 in the default profile (§3.2: "diligent updates" of
r₁, r̃₀ are crucial; the authors' 2-D code runs ~40 classifier steps per θ step; at 3, r₁'s
loss stays at chance, 2 ln 2, and the refined pushforward drifts from Q); the E_in
classifier steps reuse the pushed samples of the flow step (the paper notes they are already
computed) with fresh samples of the other side; the bridge of the ratio net and of
TRE-on-Q-flow is P_{t_k} = (T_0^{t_k})#P for k < L and the Q samples themselves at k = L (so
the telescoped estimate stays consistent when T_0^1#P ≠ Q exactly); the ratio grid is
integrated with max(1, ⌈K·S/L⌉) sub-steps per interval; bridge minibatches are drawn
independently at every k; the initial flow uses ``lr`` and Algorithm 1 a separate, smaller
``refine_lr`` (the classifier-KL term is adversarial: at the initial-flow step size the flow
exploits r₁ and diverges); TRE's waymarks use α_k = k/L; Adam for every network; the two-CNF
initialisation of §3.3 is not implemented (the linear interpolant is). §4.4: the ratio net
is trained between F⁻¹#P and N(0, I), not in pixel space (log p − log q is invariant under
the common bijection F), and BPD comes from log p̂ = log q − ∫ r ds; the improved
sampler (F ∘ T_1^0)#N(0, I) is not scored.

Tasks (``cfg["task"]``): ``toy`` — P = N(0, I), Q = the toy samples (the shared 2-D
benchmark; log-density by the instantaneous change of variables with the exact divergence);
``pair`` — P = ``train``, Q = ``arrays["train_q"]`` (GMMs, moons ↔ checkerboard, MI,
VAE latents, energy-based MNIST; see ``otflows.data.pairs`` for the file layout).

Modules: ``config`` (QFlowConfig, phases), ``flow`` (velocity net, RK4 grid transport, W₂
cost, initial flow, change of variables), ``samples`` (P/Q minibatches), ``refine``
(Algorithm 1), ``ratio`` (Q-flow-ratio net, bridge, DRE baselines), ``evaluation`` (which
evaluations a run makes, and the DRE/MI/BPD metrics), ``trainer`` (QFlowTrainer).
"""

from otflows.methods.qflow.config import PHASES, TASKS, QFlowConfig
from otflows.methods.qflow.flow import VelocityNet, grid_path, path_cost
from otflows.methods.qflow.ratio import DRE_METHODS
from otflows.methods.qflow.trainer import QFlowTrainer, make_trainer

__all__ = ["DRE_METHODS", "PHASES", "TASKS", "QFlowConfig", "QFlowTrainer", "VelocityNet",
           "grid_path", "make_trainer", "path_cost"]
