"""Contextual bandits in numpy: an agent that learns to classify from reward alone, never seeing the label.

At each step the environment shows a context ``x`` (an image's embedding), the agent picks an arm (a class),
and gets reward 1 if the arm was right, else 0. Both agents keep, per arm, a ridge regression of the reward
on the context (``A = λI + Σ x xᵀ``, ``b = Σ r x``, updated with Sherman–Morrison so a step costs O(D²)):

- :class:`EpsilonGreedy` plays the arm with the highest predicted reward, but a random arm with
  probability ``epsilon``;
- :class:`LinUCB` (Li et al., 2010, disjoint model) plays the arm with the highest *optimistic* reward
  ``θ·x + α √(xᵀ A⁻¹ x)``: arms it knows little about for this kind of context get a bonus, so exploration
  goes where it is needed instead of at random.

The shape follows scikit-learn (parameters in ``__init__``, learned state ending in ``_``): ``choose`` picks an
arm for one context, ``update`` learns from its reward, ``predict`` is the greedy policy on many contexts.
:func:`run` plays a stream and records the learning curve and the regret; :class:`LinearBandit` is a
synthetic bandit whose optimum is known, to test the agents against.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator


class _RidgeArms(BaseEstimator):
    """Per-arm ridge regression of the reward on the context, shared by both agents."""

    def fit_start(self, n_arms: int, dim: int):
        """Forget everything: ``n_arms`` arms, contexts of ``dim`` numbers."""
        self.n_arms_, self.dim_ = n_arms, dim
        self.a_inv_ = np.repeat(np.eye(dim)[None] / self.ridge, n_arms, axis=0)  # (K, D, D)
        self.b_ = np.zeros((n_arms, dim))
        self.theta_ = np.zeros((n_arms, dim))
        self.pulls_ = np.zeros(n_arms, dtype=int)
        return self

    def update(self, x: np.ndarray, arm: int, reward: float) -> None:
        """Learn from the ``reward`` of playing ``arm`` in context ``x`` (Sherman–Morrison on A⁻¹)."""
        a_inv = self.a_inv_[arm]
        ax = a_inv @ x
        a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
        self.b_[arm] += reward * x
        self.theta_[arm] = a_inv @ self.b_[arm]
        self.pulls_[arm] += 1

    def expected(self, contexts: np.ndarray) -> np.ndarray:
        """Predicted reward of every arm for each context: (N, K)."""
        return np.atleast_2d(contexts) @ self.theta_.T

    def predict(self, contexts: np.ndarray) -> np.ndarray:
        """The greedy policy (no exploration): the arm with the highest predicted reward."""
        return self.expected(contexts).argmax(axis=1)


class EpsilonGreedy(_RidgeArms):
    def __init__(self, epsilon: float = 0.1, ridge: float = 1.0):
        self.epsilon = epsilon
        self.ridge = ridge

    def choose(self, x: np.ndarray, rng: np.random.Generator) -> int:
        if rng.random() < self.epsilon:
            return int(rng.integers(self.n_arms_))
        scores = self.theta_ @ x
        return int(rng.choice(np.flatnonzero(scores == scores.max())))  # ties broken at random


class LinUCB(_RidgeArms):
    def __init__(self, alpha: float = 1.0, ridge: float = 1.0):
        self.alpha = alpha
        self.ridge = ridge

    def choose(self, x: np.ndarray, rng: np.random.Generator) -> int:
        width = np.sqrt(np.maximum(np.einsum("d,kde,e->k", x, self.a_inv_, x), 0.0))
        scores = self.theta_ @ x + self.alpha * width
        return int(rng.choice(np.flatnonzero(scores == scores.max())))


@dataclass
class Run:
    """What happened while an agent played: ``rewards`` per step, ``regret`` (cumulative, against an agent
    that always plays the best arm) and the greedy policy's accuracy at each ``checkpoints`` step."""
    rewards: np.ndarray
    regret: np.ndarray
    checkpoints: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def run(agent, contexts: np.ndarray, reward_of, best_reward: np.ndarray, n_arms: int, rng: np.random.Generator,
        checkpoints=(), evaluate=None, on_step=None) -> Run:
    """Play ``agent`` on the stream ``contexts`` (T, D). ``reward_of(t, arm)`` is the environment (the agent
    never sees anything else), ``best_reward[t]`` the expected reward of the best arm at step t (regret is
    measured against it). ``evaluate(agent)`` → accuracy is called after each step in ``checkpoints``."""
    agent.fit_start(n_arms, contexts.shape[1])
    steps = len(contexts)
    rewards = np.zeros(steps)
    out = Run(rewards, np.zeros(steps))
    wanted = set(checkpoints)
    for t in range(steps):
        arm = agent.choose(contexts[t], rng)
        rewards[t] = reward_of(t, arm)
        agent.update(contexts[t], arm, rewards[t])
        if t + 1 in wanted and evaluate is not None:
            out.checkpoints.append(t + 1)
            out.accuracy.append(float(evaluate(agent)))
        if on_step is not None:
            on_step(t + 1, steps)
    out.regret = np.cumsum(best_reward[:steps] - rewards)
    return out


class LinearBandit:
    """A synthetic bandit whose optimum is known: arm k pays ``θ_k · x`` plus Gaussian noise."""

    def __init__(self, n_arms: int = 5, dim: int = 8, noise: float = 0.1, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.theta = rng.normal(size=(n_arms, dim)) / np.sqrt(dim)
        self.noise, self.rng, self.dim = noise, rng, dim

    def contexts(self, steps: int) -> np.ndarray:
        x = self.rng.normal(size=(steps, self.dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def means(self, contexts: np.ndarray) -> np.ndarray:
        return contexts @ self.theta.T

    def play(self, contexts: np.ndarray, agent, rng: np.random.Generator) -> Run:
        means = self.means(contexts)
        noise = self.rng.normal(scale=self.noise, size=means.shape)
        return run(agent, contexts, lambda t, arm: means[t, arm] + noise[t, arm], means.max(axis=1),
                   self.theta.shape[0], rng)
