"""The training loop shared by every train_*.py script.

A script parses its flags with `make_parser` (trainer/args.py), builds a `Trainer`, a model and its
data sets, and hands `Trainer.fit` a `Stage` (its loss; trainer/stages/__init__.py). Everything else lives
here: devices and dtypes, DDP, batching, gradient accumulation and clipping, the LR schedule,
logging (stdout, tqdm, wandb), validation, checkpoints and exact resume.

Counting: a "step" is an optimizer step (--accumulation_steps micro-batches). --warmup_iters,
--log_interval, --save_interval, --eval_interval and the cosine schedule all count steps.

Distributed: run under torchrun and each process trains on a disjoint shard of every epoch
(NCCL on CUDA, gloo on CPU). Multi-node is torchrun's usual
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 train_pretrain.py ...
run on every node (same flags everywhere); only global rank 0 logs, saves and talks to wandb.

Resume: every --save_interval steps, next to the weights ({out_dir}/{save_weight}_{dim}[_moe].pth),
{save_weight}_{dim}[_moe]_resume.pth holds the full-precision model, optimizer, scaler, position
(epoch, batches done, step), RNG states (and with --streaming the stream's position) of every rank,
the wandb run id, the stage's own state
(DPO: the reference log-probs) and the configuration it belongs to. The batch order is a pure
function of (seed, epoch, world size, batch size), so a resumed run regenerates it and skips
what was done: on CPU in float32 its later losses equal an uninterrupted run's.
"""
import os
import random
import sys
import time
import uuid
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from trainer.args import build_config, check_device, load_tokenizer, resolve_dtype
from trainer.checkpoint import (SaveError, atomic_save_many, load_weights, made_by, nonfinite_tensor, read_name,
                                remove_stale_temps, resume_path, rng_state, set_rng_state, torch_load, unwrap,
                                weight_path)
from trainer.errors import Interrupted, UserError
from trainer.faults import StepGuard, agree, continue_hint, interrupt_message, plural, remedies, saved_phrase
from trainer.sampler import LengthGroupedBatchSampler, ShardedEvalSampler, StreamSampler
from trainer.schedule import get_lr

RESUME_FORMAT = 1


# ----------------------------------------------------------------------------------------------
# Helpers

def to_device(batch, device):
    """Tensors of a batch onto the device; a list of items (RL prompts) stays as it is, for the stage."""
    nb = device.type == "cuda"
    if isinstance(batch, list):
        return batch
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}
    return tuple(t.to(device, non_blocking=nb) for t in batch)


class CountingCollate:
    """Wraps a collate_fn to also return the batch's real (non-pad) input token count."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        n = 0
        for it in items:
            if isinstance(it, dict):
                n += len(it["prompt_ids"]) if "prompt_ids" in it else len(it["x_chosen"]) + len(it["x_rejected"])
            else:
                n += len(it[0])
        return self.collate(items), n


def fmt_duration(s):
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _file_id(path):
    try:
        st = os.stat(path)
        return {"path": os.path.abspath(path), "size": st.st_size}
    except OSError:
        return {"path": os.path.abspath(path), "size": None}


# ----------------------------------------------------------------------------------------------
# The trainer

class Trainer:
    def __init__(self, args):
        if getattr(args, "inference_rope_scaling", False):
            raise UserError("--inference_rope_scaling: YaRN is for inference past the trained length (eval_model.py, "
                            "the server, the page, convert_model.py); training at longer context is --max_seq_len")
        self.args = args
        self.bar = None
        self.wandb = None
        # where the run is and what it saved, for the lines that stop it (trainer/faults.py)
        self.step, self.total_steps, self.saved_step, self.saved_paths = 0, None, None, None
        self._setup_distributed()
        self.dtype = resolve_dtype(args.dtype, self.device)
        if self.device.type == "cuda" and self.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise UserError(f"--dtype bfloat16: {torch.cuda.get_device_name(self.device)} has no bfloat16; "
                            "use --dtype float16")
        if self.dtype == torch.float32:
            self.autocast = nullcontext
        else:
            self.autocast = lambda: torch.autocast(self.device.type, dtype=self.dtype)
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)  # same on every rank: identical initial weights
        self.tokenizer = load_tokenizer(args.tokenizer_path, getattr(args, "model_family", None))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if self.is_main:
            os.makedirs(args.out_dir, exist_ok=True)

    # -- distributed -------------------------------------------------------------------------
    def _setup_distributed(self):
        args = self.args
        device = check_device(args.device)
        self.ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        self.rank, self.world_size, self.local_rank = 0, 1, 0
        if self.ddp:
            self.rank = int(os.environ["RANK"])
            self.world_size = int(os.environ["WORLD_SIZE"])
            self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if device.type == "cuda":
                device = torch.device("cuda", self.local_rank)
                torch.cuda.set_device(device)
                dist.init_process_group("nccl", device_id=device)
            else:
                dist.init_process_group("gloo")
        self.device = device
        self.is_main = self.rank == 0

    def close(self, ok=True):
        """Finish wandb and leave the process group; after a failure, without waiting for the others
        (they are stuck in a collective this rank will never join; torchrun stops them)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.wandb is not None:
            import wandb
            self.wandb.finish(exit_code=0 if ok else 1)
            # stop wandb's service now: every record is on disk when we return, and a later run in
            # this process (tests, notebooks) reads WANDB_* afresh
            wandb.teardown()
            self.wandb = None
        if self.ddp and dist.is_initialized():
            if ok:
                dist.barrier()
            dist.destroy_process_group()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(ok=exc_type is None)
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt) and not issubclass(exc_type, Interrupted):
            raise Interrupted(interrupt_message(self)) from None  # Ctrl-C: one line, exit 130 (run_main)
        return False

    def barrier(self):
        if self.ddp:
            dist.barrier()

    def log(self, msg):
        if not self.is_main:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    # -- model and data ----------------------------------------------------------------------
    def build_model(self, model_cls=None, make_config=None, load=None):
        """model_cls(make_config(args)) (default: MiniMindForCausalLM from build_config), size printed first,
        --from_weight loaded: strictly by default, or by load(model, path or None), which returns the line
        to log (the reward model loads a chat model's trunk or a whole reward checkpoint)."""
        from model import MiniMindForCausalLM
        from model.model_minimind import describe_params
        args = self.args
        try:
            cfg = (make_config or build_config)(args)
        except ValueError as e:
            raise UserError(f"--dim {args.dim} --n_layers {args.n_layers}: {e}")
        if len(self.tokenizer) > cfg.vocab_size:
            raise UserError(f"{args.tokenizer_path}: tokenizer has {len(self.tokenizer)} tokens, "
                            f"more than the model's vocab_size {cfg.vocab_size}; use MiniMind's tokenizer (./model)")
        torch.manual_seed(args.seed)
        model = (model_cls or MiniMindForCausalLM)(cfg)
        n_params = sum(p.numel() for p in model.parameters())
        self.log(describe_params(model))
        self.n_params = n_params
        src = self.from_weight_path()
        if load is not None:
            self.log(load(model, src))
        elif src is not None:
            load_weights(model, src, made_by=made_by(args.from_weight))
            self.log(f"loaded {src}")
        return model.to(self.device)

    def from_weight_path(self):
        a = self.args
        if a.from_weight.lower() == "none":
            return None
        if a.from_weight.endswith(".pth") or os.sep in a.from_weight:
            return a.from_weight
        return weight_path(a.out_dir, read_name(a.out_dir, a.from_weight, a.dim, a.use_moe), a.dim, a.use_moe)

    def dataset(self, cls, path, **kw):
        """Build a data set; rank 0 first, so it alone tokenizes and writes the token cache."""
        ds = None
        if self.is_main:
            ds = cls(path, self.tokenizer, **kw)
        self.barrier()
        if ds is None:
            ds = cls(path, self.tokenizer, verbose=False, **kw)
        if len(ds) == 0:
            raise UserError(f"{path}: no usable samples; check the file")
        files = getattr(getattr(ds, "cache", None), "files", None)
        if files and (len(files) > 1 or files[0][0] != path):  # a folder, a glob, a saved dataset
            self.log(f"{path}: {len(files)} file(s): " + ", ".join(
                f"{os.path.relpath(f, path) if os.path.isdir(path) else f} ({n} rows)" for f, n in files))
        return ds

    # -- resume ------------------------------------------------------------------------------
    def out_paths(self, stage=None):
        """(weights file, resume file): the stage's own weights path if it names one (the resume
        file beside it, `_resume` before `.pth`), else {out_dir}/{save_weight}_{dim}[_moe].pth."""
        a = self.args
        own = stage.weights_path(a) if stage is not None else None
        if own is not None:
            return own, own[:-len(".pth")] + "_resume.pth"
        return (weight_path(a.out_dir, a.save_weight, a.dim, a.use_moe),
                resume_path(a.out_dir, a.save_weight, a.dim, a.use_moe))

    def fingerprint(self, stage):
        a = self.args
        fp = {"stage": stage.name, "dim": a.dim, "n_layers": a.n_layers, "use_moe": bool(a.use_moe),
              "max_seq_len": a.max_seq_len, "data": _file_id(a.data_path), "epochs": a.epochs,
              "batch_size": a.batch_size, "accumulation_steps": a.accumulation_steps,
              "learning_rate": a.learning_rate, "warmup_iters": a.warmup_iters, "grad_clip": a.grad_clip,
              "seed": a.seed, "world_size": self.world_size, "group_by_length": bool(a.group_by_length),
              "dtype": str(self.dtype).replace("torch.", "")}
        if getattr(a, "streaming", False):
            fp["streaming"] = True
        for k, v in stage.fingerprint().items():
            fp[k] = v
        return fp

    FLAG_OF = {"data": "--data_path", "world_size": "processes (torchrun --nproc_per_node x nodes)",
               "stage": "script"}

    def load_resume(self, stage):
        _, path = self.out_paths(stage)
        if not os.path.exists(path):
            self.log(f"no resume file at {path}; starting from the beginning")
            return None
        st = torch_load(path, "delete it, or run without --from_resume 1 to start over")
        if not isinstance(st, dict) or st.get("format") != RESUME_FORMAT:
            raise UserError(f"{path}: not a resume file of this trainer; delete it or run without --from_resume 1")
        want, have = self.fingerprint(stage), st["config"]
        diffs = []
        for k in sorted(set(want) | set(have)):
            if want.get(k) != have.get(k):
                flag = self.FLAG_OF.get(k, "--" + k)
                old, new = have.get(k), want.get(k)
                if k == "data":
                    old, new = (f"{old['path']} ({old['size']} bytes)" if old else None,
                                f"{new['path']} ({new['size']} bytes)")
                diffs.append(f"{flag} {old} (now {new})")
        if diffs:
            raise UserError(f"{path}: resume file belongs to a different configuration: " + "; ".join(diffs[:4])
                            + "; rerun with the same settings, or without --from_resume 1 to start over")
        return st

    def save(self, model, optimizer, scaler, stage, epoch, batch_in_epoch, step, final=False):
        """Weights (half precision, MiniMind2's format) and the resume file, moved into place together
        (atomic), never from non-finite values. Rank 0 writes; every rank learns how it went, so a
        failed save stops all ranks with rank 0's line."""
        # every rank's RNG goes into the file: gathered collectively, written by rank 0
        rng = rng_state()
        if getattr(self, "stream", None) is not None:  # --streaming: where this rank's stream is
            rng["data"] = self.stream.state_dict()
        if self.ddp:
            gathered = [None] * self.world_size
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        wpath, rpath = self.out_paths(stage)
        problem = None
        if self.is_main:
            try:
                problem = self._write_checkpoint(model, optimizer, scaler, stage, epoch, batch_in_epoch, step,
                                                 gathered, wpath, rpath)
            except Exception as e:  # a bug: rank 0 shows its traceback, the other ranks stop with it
                agree(self, f"rank 0 failed while saving step {step} ({type(e).__name__})")
                raise
        problem = agree(self, problem)
        if problem:
            raise UserError(problem)
        self.saved_step, self.saved_paths = step, (wpath, rpath)
        self.log(f"saved {wpath} (step {step}{', final' if final else ''})")

    def _write_checkpoint(self, model, optimizer, scaler, stage, epoch, batch_in_epoch, step, rngs, wpath, rpath):
        """Write both files; returns the line that stops the run if they must not or cannot be written."""
        weights, state = stage.weights_state(model), stage.model_state(model)
        bad = nonfinite_tensor(state)
        if bad is None and nonfinite_tensor(weights) is not None:
            k, what = nonfinite_tensor(weights)
            bad = k, f"{what} in the weights file's float16 (|w| up to {state[k].abs().max().item():.3g})" \
                if k in state else what
        if bad is not None:
            return (f"not saving step {step}: the weights are not finite ({bad[0]} holds {bad[1]}); "
                    f"{saved_phrase(self)}; {remedies(self)}")
        try:
            atomic_save_many([(weights, wpath), ({
                "format": RESUME_FORMAT,
                "config": self.fingerprint(stage),
                "model": state,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch, "batch": batch_in_epoch, "step": step,
                "rng": rngs,
                "wandb_id": self.wandb_id,
                "stage": stage.state_dict(),
                "skipped_steps": self.guard.skipped if getattr(self, "guard", None) else 0,
            }, rpath)])
        except SaveError as e:
            return (f"{e.path}: could not save step {step}: {e.error.strerror or e.error} (errno {e.error.errno}); "
                    f"{saved_phrase(self)} and no temporary file is left; free some space or make --out_dir "
                    f"writable, {continue_hint(self)}")
        return None

    # -- validation --------------------------------------------------------------------------
    def evaluate(self, model, val_ds, collate, stage):
        raw = unwrap(model)
        was_training = raw.training
        raw.eval()
        sampler = ShardedEvalSampler(val_ds.lengths, self.args.batch_size, self.rank, self.world_size)
        loader = DataLoader(val_ds, batch_sampler=sampler, collate_fn=collate, num_workers=0)
        sums = {k: torch.zeros((), dtype=torch.float64, device=self.device) for k in stage.eval_keys}
        with torch.no_grad(), self.autocast():
            for batch in loader:
                for k, v in stage.eval_sums(raw, to_device(batch, self.device)).items():
                    sums[k] += v.to(torch.float64)
        if self.ddp:
            vec = torch.stack([sums[k] for k in stage.eval_keys])
            dist.all_reduce(vec)
            sums = dict(zip(stage.eval_keys, vec))
        raw.train(was_training)
        return stage.eval_metrics({k: float(v) for k, v in sums.items()})

    # -- wandb -------------------------------------------------------------------------------
    def _init_wandb(self, stage, resume_id, total_steps):
        a = self.args
        if not (a.use_wandb and self.is_main):
            return
        import wandb  # only with --use_wandb: importing it costs seconds
        # uuid, not the seeded global RNG: a run id must not depend on (or disturb) --seed
        self.wandb_id = resume_id or uuid.uuid4().hex[:8]
        config = {k: v for k, v in vars(a).items() if k not in ("ddp", "local_rank")}
        config.update(world_size=self.world_size, total_steps=total_steps, n_params=self.n_params,
                      dtype_resolved=str(self.dtype).replace("torch.", ""))
        name = (f"MiniMind-{stage.title}-Epoch-{a.epochs}-BatchSize-{a.batch_size}-LearningRate-{a.learning_rate}"
                f"-{a.dim}{'-moe' if a.use_moe else ''}")
        self.wandb = wandb.init(project=a.wandb_project, name=name, config=config, id=self.wandb_id,
                                resume="allow")

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, model, train_ds, collate, stage, val_ds=None):
        a = self.args
        self.stream = train_ds if getattr(train_ds, "streaming", False) else None
        sampler = StreamSampler(train_ds, a.batch_size, self.world_size) if self.stream is not None else \
            LengthGroupedBatchSampler(train_ds.lengths, a.batch_size, self.rank, self.world_size,
                                      seed=a.seed, group_by_length=a.group_by_length)
        sampler = stage.batch_sampler(self, train_ds, sampler)
        batches_per_epoch = len(sampler)
        # an RL stage may take several optimizer steps on each step's rollouts (GRPO's --num_iterations)
        steps_per_epoch = -(-batches_per_epoch // a.accumulation_steps) * stage.num_iterations
        total_steps = a.epochs * steps_per_epoch
        eval_interval = a.eval_interval or a.save_interval
        self.step, self.total_steps = 0, total_steps

        # the stage's parameter groups (default: the trainable ones at --learning_rate), each on the schedule
        groups = stage.param_groups(model, a)
        peaks, names = [g["lr"] for g in groups], [g.pop("name", f"group{i}") for i, g in enumerate(groups)]
        optimizer = torch.optim.AdamW(groups, lr=a.learning_rate)
        # loss scaling only for float16: bfloat16 has float32's range
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

        if self.is_main:
            for path in self.out_paths(stage):
                remove_stale_temps(path)
        resume = self.load_resume(stage) if a.from_resume else None
        stage.prepare(self, model, train_ds, val_ds, collate, resume["stage"] if resume else None)
        start_epoch, start_batch, step = 0, 0, 0
        self.wandb_id = None
        if resume is not None:
            stage.load_model_state(model, resume["model"])
            optimizer.load_state_dict(resume["optimizer"])
            scaler.load_state_dict(resume["scaler"])
            start_epoch, start_batch, step = resume["epoch"], resume["batch"], resume["step"]
            rngs = resume["rng"]
            set_rng_state(rngs[self.rank] if self.rank < len(rngs) else rngs[0])
            if self.stream is not None:
                self.stream.load_state_dict(rngs[self.rank]["data"])
            self.wandb_id = resume.get("wandb_id")
            self.step, self.saved_step, self.saved_paths = step, step, self.out_paths(stage)
            if step >= total_steps:
                self.log(f"resume file is from a finished run (epoch {min(start_epoch, a.epochs)}/{a.epochs}, step "
                         f"{step}/{total_steps}); nothing to do; run without --from_resume 1 to train again")
                return None
            self.log(f"resumed from epoch {start_epoch + 1} step {step}")
        self.guard = StepGuard(self, getattr(a, "max_bad_steps", 10), resume.get("skipped_steps", 0) if resume else 0)
        self._init_wandb(stage, self.wandb_id, total_steps)

        train_model = model
        if self.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP
            train_model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if a.compile:
            train_model = torch.compile(train_model)
        model.train()

        self.log(f"{len(train_ds)} samples, {self.world_size} process(es), {plural(batches_per_epoch, 'batch', 'batches')} "
                 f"of {a.batch_size} per process per epoch, {plural(total_steps, 'optimizer step')}")
        if self.is_main and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True)

        window = _Window(self.device)
        pending = []  # this step's micro-batches, counted in the window once the step is taken
        t_start, step_at_start = time.time(), step
        t_window = time.time()
        last_val, log_due = None, False
        for epoch in range(start_epoch, a.epochs):
            first = start_batch if epoch == start_epoch else 0
            if first >= batches_per_epoch:
                continue
            sampler.set_epoch(epoch, first)
            loader = sampler.loader(train_ds, CountingCollate(collate)) if self.stream is not None else \
                DataLoader(train_ds, batch_sampler=sampler, collate_fn=CountingCollate(collate),
                           num_workers=0 if getattr(sampler, "in_process", False) else a.num_workers,
                           pin_memory=self.device.type == "cuda",
                           generator=torch.Generator())  # leave the global RNG alone
            b = first
            group = []  # the loader's batches of one optimizer step
            for batch, ntok in loader:
                group_start = b - b % a.accumulation_steps
                group_size = min(a.accumulation_steps, batches_per_epoch - group_start)
                group.append((to_device(batch, self.device), ntok))
                b += 1
                if b < group_start + group_size:
                    continue
                # what the step trains on: the batches themselves, or (RL) what the stage makes of them online
                micro = stage.rollout(self, model, group)
                group = []
                save_due = False
                for iteration in range(stage.num_iterations):
                    lrs = [get_lr(step, total_steps, peak, a.warmup_iters) for peak in peaks]
                    for pg, group_lr in zip(optimizer.param_groups, lrs):
                        pg["lr"] = group_lr
                    # the micro-batches of this step (PPO: one minibatch; none after its early stop)
                    step_micro = stage.iteration_batches(micro, iteration)
                    for i, (batch, ntok) in enumerate(step_micro):
                        last = i + 1 == len(step_micro)
                        sync = nullcontext() if (last or not self.ddp) else train_model.no_sync()
                        with sync:
                            with self.autocast():
                                loss, metrics = stage.loss(train_model, batch)
                            scaler.scale(loss / len(step_micro)).backward()
                        pending.append((loss.detach(), metrics, ntok))

                    if step_micro and not stage.accept_step(self):  # dropped by the stage (PPO's early stop)
                        for item in pending:
                            window.add(*item)
                    elif step_micro:  # (none: the step only advances the schedule)
                        scaler.unscale_(optimizer)
                        clip = a.grad_clip if a.grad_clip > 0 else float("inf")
                        norms = [torch.nn.utils.clip_grad_norm_(pg["params"], clip) for pg in optimizer.param_groups]
                        grad_norm = norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack(norms))
                        # a non-finite loss or gradient norm skips the step on every rank (trainer/faults.py)
                        if self.guard.check(torch.stack([p[0].float() for p in pending]).sum(), grad_norm, scaler,
                                            step + 1, total_steps, epoch, group_start, b - 1, batches_per_epoch):
                            scaler.step(optimizer)
                            for item in pending:
                                window.add(*item)
                            window.grad_norm(grad_norm)
                        else:
                            window.tokens += sum(p[2] for p in pending)
                        scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    pending = []
                    step += 1
                    self.step = step
                    if self.bar is not None:
                        self.bar.update(1)
                    done = step == total_steps
                    row = {}  # this step's wandb row, committed once

                    # a short run shows its start; a line due at a step left empty waits for one with something to say
                    log_due = log_due or step % a.log_interval == 0 or step == 1
                    if (log_due or done) and (step_micro or window.n):
                        log_due = False
                        stats = window.reduce(self.ddp)
                        now = time.time()
                        tps = stats.pop("tokens") / max(now - t_window, 1e-9)
                        eta = (now - t_start) / max(step - step_at_start, 1) * (total_steps - step)
                        row.update(self._log_step(epoch, step, total_steps, lrs, names, stats, tps, eta))
                        row.update(stage.log_extras(self, step))
                        window = _Window(self.device)
                        t_window = time.time()
                    if val_ds is not None and (step % eval_interval == 0 or done):
                        last_val = self.evaluate(model, val_ds, collate, stage)
                        self.log(f"step {step}/{total_steps} " + " ".join(f"{k} {v:.4f}" for k, v in last_val.items()))
                        row.update(last_val)
                    if self.wandb is not None and row:
                        self.wandb.log(row, step=step, commit=True)
                    if iteration + 1 == stage.num_iterations:
                        stage.after_updates(self, model)
                    # saved between a step's iterations, a resume could not redo the rest of them exactly
                    save_due = save_due or step % a.save_interval == 0
                    if (save_due or done) and iteration + 1 == stage.num_iterations:
                        pos_epoch, pos_batch = (epoch + 1, 0) if b >= batches_per_epoch else (epoch, b)
                        self.save(model, optimizer, scaler, stage, pos_epoch, pos_batch, step, final=done)
            start_batch = 0
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        return last_val

    def _log_step(self, epoch, step, total, lrs, names, stats, tps, eta):
        a = self.args
        loss, gn, lr = stats.pop("loss"), stats.pop("grad_norm"), lrs[0]
        group_lrs = {f"{n}_lr": v for n, v in zip(names, lrs)} if len(lrs) > 1 else {}  # PPO: actor_lr, critic_lr
        # no gradient norm when the window took no update (PPO's early stop dropped its steps)
        norm = f"grad_norm {gn:.4f} " if gn == gn else ""
        line = (f"epoch {epoch + 1}/{a.epochs} step {step}/{total} loss {loss:.6f} lr {lr:.3e} "
                + "".join(f"{k} {v:.3e} " for k, v in group_lrs.items())
                + f"{norm}tok/s {tps:.0f} eta {fmt_duration(eta)}")
        if stats:
            line += " " + " ".join(f"{k} {v:.4f}" for k, v in stats.items())
        skipped = self.guard.skipped
        if skipped:
            line += f" skipped_steps {skipped}"
        self.log(line)
        row = {"loss": loss, "lr": lr, **group_lrs, "tokens_per_sec": tps, "epoch": epoch + 1, **stats,
               "skipped_steps": skipped}
        if gn == gn:
            row["grad_norm"] = gn
        return row


class _Window:
    """Sums since the last log line; reduced across ranks only when logging (one all_reduce)."""

    def __init__(self, device):
        self.device = device
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.n = 0
        self.tokens = 0
        self.metric_sums, self.metric_counts = {}, {}
        self.gn_sum, self.gn_n = torch.zeros((), dtype=torch.float64, device=device), 0

    def add(self, loss, metrics, ntok):
        self.loss += loss.to(torch.float64)
        self.n += 1
        self.tokens += ntok
        for k, v in metrics.items():
            v = v.detach().to(torch.float64)
            self.metric_sums[k] = self.metric_sums.get(k, 0) + v.sum()
            self.metric_counts[k] = self.metric_counts.get(k, 0) + v.numel()

    def grad_norm(self, gn):
        self.gn_sum += gn.detach().to(torch.float64)
        self.gn_n += 1

    def reduce(self, ddp):
        keys = sorted(self.metric_sums)
        vals = [self.loss, torch.tensor(float(self.n), dtype=torch.float64, device=self.device),
                torch.tensor(float(self.tokens), dtype=torch.float64, device=self.device)]
        for k in keys:
            vals += [torch.as_tensor(self.metric_sums[k], dtype=torch.float64, device=self.device).reshape(()),
                     torch.tensor(float(self.metric_counts[k]), dtype=torch.float64, device=self.device)]
        vec = torch.stack(vals)
        if ddp:
            dist.all_reduce(vec)
        vec = vec.tolist()
        out = {"loss": vec[0] / vec[1] if vec[1] else float("nan"), "tokens": vec[2],  # nan: all skipped
               # the clipped-over norm is the same on every rank (gradients are already averaged)
               "grad_norm": float(self.gn_sum) / self.gn_n if self.gn_n else float("nan")}
        for i, k in enumerate(keys):
            out[k] = vec[3 + 2 * i] / max(vec[4 + 2 * i], 1)
        return out
