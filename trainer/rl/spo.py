"""SPO's arithmetic (single-stream policy optimisation, Xu & Ding, arXiv 2509.13232): one completion per
prompt, judged against a persistent per-prompt value tracker instead of a group of siblings.

    ValueTracker(n)                 a Beta(alpha, beta) success estimate per prompt, forgotten at the
                                    KL-adaptive rate rho; baseline(idx), spread(idx), update(idx, r, drift)
    normalized_advantages(adv)      r - baseline, normalised over the whole batch (every rank's rows)
    kl_rho(distance, ...)           rho = 2 ** (-D / D_half), clipped to [rho_min, rho_max]

The tracker, as the paper defines it: alpha <- rho alpha + r, beta <- rho beta + (1 - r), baseline
alpha / (alpha + beta), read BEFORE the prompt's new reward is added. rho forgets old evidence faster the
further the policy moved since it last acted on the prompt: D is that distance, measured here as the sum
of the policy's per-step drift (mean |log pi_new - log pi_old| over each step's own completion tokens,
the estimator the paper's code uses) since the prompt's last visit. A prompt never seen has D = 0, so
rho = rho_max. The paper measures D on the prompt's previous completion instead, which needs that
completion and a forward over it per prompt; the odometer needs one scalar per prompt and is the same on
every rank.

Rewards need not lie in [0, 1]: alpha / (alpha + beta) is then the rho-weighted mean reward, and the
spread (the prioritised sampler's weight) the rho-weighted standard deviation, which for 0/1 rewards is
the paper's sqrt(p (1 - p)).
"""
import torch

RHO_MODES = ("kl", "constant")


def kl_rho(distance, d_half, rho_min, rho_max):
    """(N,) forgetting factors from (N,) policy distances."""
    return torch.clamp(torch.pow(2.0, -distance / d_half), min=rho_min, max=rho_max)


class ValueTracker:
    """Per-prompt (alpha, beta) and the second moment of the rewards, float64, identical on every rank (each
    rank applies every rank's updates in the same order)."""

    def __init__(self, n, prior=0.5, prior_count=1.0, rho_mode="kl", rho_const=0.9, d_half=0.06,
                 rho_min=0.5, rho_max=0.96):
        if rho_mode not in RHO_MODES:
            raise ValueError(f"rho_mode {rho_mode!r}: expected one of {RHO_MODES}")
        self.rho_mode, self.rho_const, self.d_half = rho_mode, float(rho_const), float(d_half)
        self.rho_min, self.rho_max = float(rho_min), float(rho_max)
        self.alpha = torch.full((n,), prior * prior_count, dtype=torch.float64)
        self.beta = torch.full((n,), (1.0 - prior) * prior_count, dtype=torch.float64)
        self.second = torch.full((n,), prior * prior_count, dtype=torch.float64)  # 0/1 prior: r^2 = r
        self.visits = torch.zeros(n, dtype=torch.long)
        self.last_odometer = torch.zeros(n, dtype=torch.float64)
        self.odometer = 0.0  # the policy's accumulated drift since the start (see the module's docstring)

    def baseline(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        return self.alpha[idx] / (self.alpha[idx] + self.beta[idx])

    def spread(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        n = self.alpha[idx] + self.beta[idx]
        mean = self.alpha[idx] / n
        return (self.second[idx] / n - mean * mean).clamp(min=0.0).sqrt()

    def rho(self, idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self.rho_mode == "constant":
            return torch.full((len(idx),), self.rho_const, dtype=torch.float64)
        distance = torch.where(self.visits[idx] > 0, self.odometer - self.last_odometer[idx],
                               torch.zeros(len(idx), dtype=torch.float64))
        return kl_rho(distance, self.d_half, self.rho_min, self.rho_max)

    def update(self, idx, rewards):
        """Add each (prompt, reward) in order (a prompt twice in one batch: twice); NaN rewards are skipped.
        Returns the rho used for each row (NaN where skipped)."""
        rhos = torch.full((len(idx),), float("nan"), dtype=torch.float64)
        for k, (i, r) in enumerate(zip(torch.as_tensor(idx).tolist(), torch.as_tensor(rewards).tolist())):
            if r != r:
                continue
            rho = float(self.rho([i])[0])
            self.alpha[i] = rho * self.alpha[i] + r
            self.beta[i] = rho * self.beta[i] + (1.0 - r)
            self.second[i] = rho * self.second[i] + r * r
            self.visits[i] += 1
            self.last_odometer[i] = self.odometer
            rhos[k] = rho
        return rhos

    def initialize(self, idx, mean, second, count):
        """The paper's offline initialisation: prompt idx[k] starts from count[k] rewards of the starting policy
        (their mean and mean square): alpha = n * mean, beta = n * (1 - mean). The estimate counts as a visit at
        drift 0, so the first online visit forgets it by how far the policy has moved since the start. Rows with
        count 0 (every sample unscorable) keep the prior."""
        idx, mean, second, count = (torch.as_tensor(t) for t in (idx, mean, second, count))
        ok = count > 0
        idx, mean, second, n = idx[ok].long(), mean[ok].double(), second[ok].double(), count[ok].double()
        self.alpha[idx] = n * mean
        self.beta[idx] = n * (1.0 - mean)
        self.second[idx] = n * second
        self.visits[idx] = 1
        self.last_odometer[idx] = 0.0

    def add_drift(self, drift):
        self.odometer += float(drift)

    def state_dict(self):
        return {"alpha": self.alpha.clone(), "beta": self.beta.clone(), "second": self.second.clone(),
                "visits": self.visits.clone(), "last_odometer": self.last_odometer.clone(),
                "odometer": torch.tensor(self.odometer, dtype=torch.float64)}

    def load_state_dict(self, state):
        if len(state["alpha"]) != len(self.alpha):
            raise ValueError(f"the resume file tracks {len(state['alpha'])} prompts, the data has {len(self.alpha)}")
        for k in ("alpha", "beta", "second", "visits", "last_odometer"):
            getattr(self, k).copy_(state[k])
        self.odometer = float(state["odometer"])


def normalized_advantages(adv, eps=1e-8):
    """(N,) advantages normalised over the batch: (A - mean) / (std + eps), NaN rows (unscorable) -> 0 and left
    out of the statistics. The paper normalises over the whole batch, every rank's rows: pass them all."""
    ok = ~torch.isnan(adv)
    out = torch.zeros_like(adv)
    if ok.sum() == 0:
        return out
    a = adv[ok]
    std = a.std() if len(a) > 1 else a.new_zeros(())
    out[ok] = (a - a.mean()) / (std + eps)
    return out


class PrioritizedSampler:
    """The paper's adaptive curriculum: each global batch draws --batch_size x world prompts without
    replacement, with probability proportional to the tracker's spread + 0.05 (sqrt(p (1 - p)) + 0.05 for
    0/1 rewards: prompts the policy sometimes solves come most often, ones it always or never solves
    seldom). An epoch is as many batches as a pass over the data would be. Batch i of epoch e is drawn
    from a generator seeded by (seed, e, i) with the trackers as they are when it is drawn, so a resumed
    run (trackers restored) draws what the uninterrupted one drew; for that the loader runs in the
    training process (in_process: no workers prefetching ahead of the trackers)."""
    in_process = True
    EPSILON = 0.05

    def __init__(self, stage, n, batch_size, rank=0, world_size=1, seed=0):
        self.stage, self.n = stage, int(n)
        self.batch_size, self.rank, self.world_size, self.seed = int(batch_size), int(rank), int(world_size), int(seed)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start_batch=0):
        self.epoch, self.start = int(epoch), int(start_batch)

    def __len__(self):
        n = self.n + (-self.n) % self.world_size
        return -(-n // (self.batch_size * self.world_size))

    def weights(self):
        return self.stage.tracker.spread(torch.arange(self.n)) + self.EPSILON

    def draw(self, epoch, i):
        """Batch i of `epoch` for every rank: (world_size, batch_size) prompt indices."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) * 1_000_003 + i)
        k = min(self.batch_size * self.world_size, self.n)
        idx = torch.multinomial(self.weights(), k, replacement=False, generator=g)
        if k < self.batch_size * self.world_size:  # fewer prompts than a global batch: some twice
            idx = idx.repeat(-(-self.batch_size * self.world_size // k))[:self.batch_size * self.world_size]
        return idx.reshape(-1, self.world_size).T  # rank r takes every world_size-th draw

    def __iter__(self):
        for i in range(self.start, len(self)):
            yield self.draw(self.epoch, i)[self.rank].tolist()
