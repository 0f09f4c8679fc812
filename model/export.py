"""Writing a model in the formats other tools load: transformers folders, .pth, PEFT, GGUF.

    export_minimind(model, tokenizer, dir)   MiniMindForCausalLM + its modelling file (trust_remote_code)
    export_llama(model, tokenizer, dir)      plain LlamaForCausalLM (vLLM, TGI, llama.cpp's converter)
A reward model (train_reward.py) goes out as a sequence classifier: MiniMindForSequenceClassification or
LlamaForSequenceClassification (num_labels=1, pad_token_id set), and back to .pth.
    export_pth(model, path)                  the training scripts' state dict
    export_peft(model, adapter, dir)         a MiniMind LoRA file as a PEFT adapter folder
    export_gguf(model, tokenizer, path)      one llama-architecture GGUF, tokenizer inside, and a Modelfile

Every output is written beside its final place and moved there in one step: an existing output is
kept unless force=True, and a failed export leaves nothing behind. scripts/convert_model.py is the
command line over this module; scripts/eval_benchmarks.py exports through it too.
"""
import json
import os
import shutil
import sys
import tempfile

import torch

from model.loading import as_minimind
from trainer.checkpoint import save_weights
from trainer.errors import UserError

# MiniMind2's chat defaults (eval_model.py), shipped as generation_config.json.
GEN_DEFAULTS = dict(do_sample=True, temperature=0.85, top_p=0.85)

TORCH_OUTTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def yarn_of(cfg):
    """The model's YaRN parameters (rope_type "yarn"), or None for plain RoPE."""
    rp = getattr(cfg, "rope_parameters", None) or {}
    return rp if rp.get("rope_type") == "yarn" else None


def rope_parameters_of(cfg):
    """transformers' rope_parameters for the export: plain RoPE at rope_theta, or the model's YaRN."""
    return dict(yarn_of(cfg) or {"rope_type": "default"}, rope_theta=float(cfg.rope_theta))


def llama_config_from(cfg):
    """LlamaConfig computing exactly what a dense MiniMindConfig computes."""
    from transformers import LlamaConfig
    if getattr(cfg, "model_family", "minimind2") == "minimind3":
        raise UserError("--to llama/gguf: a MiniMind-3 model norms its queries and keys (Qwen3's attention), which "
                        "Llama has not; export it with --to qwen3 instead")
    if cfg.use_moe:
        raise UserError("--to llama/gguf: a mixture-of-experts MiniMind (routed + shared experts) has no plain "
                        "Llama equivalent; export it with --to minimind instead")
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, head_dim=cfg.hidden_size // cfg.num_attention_heads,
        max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=rope_parameters_of(cfg), hidden_act="silu", attention_bias=False, mlp_bias=False,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id,
        architectures=["LlamaForCausalLM"])


def qwen3_config_from(cfg):
    """Qwen3Config (Qwen3MoeConfig for an MoE) computing exactly what a MiniMind-3 config computes."""
    from transformers import Qwen3Config, Qwen3MoeConfig
    if getattr(cfg, "model_family", "minimind2") != "minimind3":
        raise UserError("--to qwen3: a MiniMind2 model has no q/k norms, which Qwen3's attention applies; export it "
                        "with --to llama (dense) or --to minimind")
    common = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads, head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=rope_parameters_of(cfg), hidden_act="silu", attention_bias=False,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id)
    if not cfg.use_moe:
        return Qwen3Config(**common, architectures=["Qwen3ForCausalLM"])
    if cfg.n_shared_experts:
        raise UserError("--to qwen3: this MoE has shared experts, which Qwen3-MoE has not")
    return Qwen3MoeConfig(**common, num_experts=cfg.n_routed_experts, num_experts_per_tok=cfg.num_experts_per_tok,
                          moe_intermediate_size=cfg.moe_intermediate_size, norm_topk_prob=cfg.norm_topk_prob,
                          decoder_sparse_step=1, mlp_only_layers=[], router_aux_loss_coef=cfg.aux_loss_alpha,
                          architectures=["Qwen3MoeForCausalLM"])


# ------------------------------------------------------------------------------------ the outputs

class _Output:
    """Write a file or directory next to its final place, then move it there in one step.

    An existing output is kept unless --force; a failed conversion leaves nothing behind.
    """

    def __init__(self, path, force, is_dir):
        self.path, self.is_dir = os.path.abspath(path), is_dir
        if os.path.lexists(self.path) and not force:
            raise UserError(f"{path}: already exists; choose another --output or pass --force to replace it")
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        base = "." + os.path.basename(self.path) + "."
        if is_dir:
            self.tmp = tempfile.mkdtemp(prefix=base, suffix=".tmp", dir=parent)
        else:
            fd, self.tmp = tempfile.mkstemp(prefix=base, suffix=".tmp", dir=parent)
            os.close(fd)

    def __enter__(self):
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            (shutil.rmtree if self.is_dir else os.unlink)(self.tmp)
            return False
        # mkstemp/mkdtemp make private (0600/0700) entries; an export gets the usual umask mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, (0o777 if self.is_dir else 0o666) & ~umask)
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            old = self.path + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.path, old)
            os.replace(self.tmp, self.path)
            shutil.rmtree(old)
        else:
            os.replace(self.tmp, self.path)
        return False


def save_tokenizer(tokenizer, out_dir):
    """save_pretrained, plus what older transformers (vLLM, TGI pin 4.x) need to read it back.

    transformers 5 names the class TokenizersBackend and moves the chat template to its own file;
    4.x knows neither, so the config says PreTrainedTokenizerFast and carries the template too.
    """
    tokenizer.save_pretrained(out_dir)
    path = os.path.join(out_dir, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        tc = json.load(f)
    for junk in ("is_local", "local_files_only"):
        tc.pop(junk, None)
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc.setdefault("add_bos_token", False)
    tc.setdefault("add_eos_token", False)
    if tokenizer.chat_template:
        tc["chat_template"] = tokenizer.chat_template
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tc, f, ensure_ascii=False, indent=2)


def _generation_config(cfg, tokenizer):
    from transformers import GenerationConfig
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, **GEN_DEFAULTS)


def is_reward(net):
    """Whether `net` is a reward model (a sequence classifier: MiniMind's or a Llama)."""
    return type(net).__name__.endswith("ForSequenceClassification")


def _as_source(net, where="the model"):
    if is_reward(net):
        from model.reward import as_reward_minimind
        net = as_reward_minimind(net, where)
        net.config.architectures = [type(net).__name__]
        return net
    return as_minimind(net, where)


def export_minimind(net, tokenizer, output, outtype="f16", force=False):
    """transformers directory in the project's own format; the modelling file travels with it."""
    reward = is_reward(net)
    net = _as_source(net).to(TORCH_OUTTYPES[outtype])
    # save_pretrained copies model/model_minimind.py (self-contained: torch + transformers) into the
    # folder and writes config.json's auto_map for the classes registered here.
    if reward:
        net.config.pad_token_id = tokenizer.pad_token_id  # where a classifier finds each row's last token
    else:
        net.generation_config = _generation_config(net.config, tokenizer)
    cfg_cls, model_cls = type(net.config), type(net)
    cfg_cls.register_for_auto_class()
    model_cls.register_for_auto_class("AutoModelForSequenceClassification" if reward else "AutoModelForCausalLM")
    try:
        with _Output(output, force, is_dir=True) as tmp:
            net.save_pretrained(tmp)
            save_tokenizer(tokenizer, tmp)
            if not os.path.isfile(os.path.join(tmp, "model_minimind.py")):
                raise RuntimeError("save_pretrained did not copy the modelling file")
    finally:
        # the registration is class-wide; other saves in this process stay plain
        cfg_cls._auto_class = model_cls._auto_class = None
    return output


def export_llama(net, tokenizer, output, outtype="f16", force=False):
    """transformers directory with LlamaForCausalLM: the state-dict names are already Llama's. A reward model
    goes out as LlamaForSequenceClassification (num_labels=1; pad_token_id set, by which transformers finds
    each row's last token, where the score is read)."""
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification
    src = _as_source(net)
    cfg = llama_config_from(src.config)
    if is_reward(src):
        cfg.num_labels, cfg.pad_token_id, cfg.tie_word_embeddings = src.config.num_labels, tokenizer.pad_token_id, False
        cfg.architectures = ["LlamaForSequenceClassification"]
        llama = LlamaForSequenceClassification(cfg)
    else:
        llama = LlamaForCausalLM(cfg)
    llama.load_state_dict(src.state_dict(), strict=True)
    llama = llama.to(TORCH_OUTTYPES[outtype]).eval()
    if not is_reward(src):
        llama.generation_config = _generation_config(llama.config, tokenizer)
    with _Output(output, force, is_dir=True) as tmp:
        llama.save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        _add_legacy_config_keys(os.path.join(tmp, "config.json"), src.config)
    return output


def export_qwen3(net, tokenizer, output, outtype="f16", force=False):
    """transformers directory with Qwen3ForCausalLM (Qwen3MoeForCausalLM for an MoE) for a MiniMind-3 model:
    its state-dict names are already Qwen3's, one tensor per expert as the Hub's Qwen3-MoE checkpoints hold
    them (transformers fuses them on load; vLLM and llama.cpp's converter read them as they are)."""
    from safetensors.torch import save_file
    src = _as_source(net)
    if is_reward(src):
        raise UserError("--to qwen3: a reward model goes out with --to minimind or --to pth")
    cfg = qwen3_config_from(src.config)
    cfg.dtype = TORCH_OUTTYPES[outtype]
    dtype = TORCH_OUTTYPES[outtype]
    state = {k: v.detach().to(dtype).contiguous() for k, v in src.state_dict().items()
             if not (k == "lm_head.weight" and cfg.tie_word_embeddings)}
    with _Output(output, force, is_dir=True) as tmp:
        cfg.save_pretrained(tmp)
        save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        _generation_config(cfg, tokenizer).save_pretrained(tmp)
        save_tokenizer(tokenizer, tmp)
        _add_legacy_config_keys(os.path.join(tmp, "config.json"), src.config)
    return output


def _add_legacy_config_keys(path, src_cfg):
    """Also write config.json's transformers-4 keys (rope_theta, rope_scaling, torch_dtype).

    transformers 5 writes RoPE as rope_parameters; readers on 4.x (vLLM, TGI, llama.cpp's converter
    in many installs) look for rope_theta and would silently fall back to 10000 without it, and for
    YaRN in rope_scaling.
    """
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.setdefault("rope_theta", float(src_cfg.rope_theta))
    yarn = yarn_of(src_cfg)
    if yarn:
        cfg.setdefault("rope_scaling", {k: v for k, v in yarn.items() if k != "rope_theta"})
    if "dtype" in cfg:
        cfg.setdefault("torch_dtype", cfg["dtype"])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def export_pth(net, output, outtype="f16", force=False, where="the model"):
    """A .pth state_dict with MiniMind2's key names, as the training scripts write it."""
    src = _as_source(net, where)
    with _Output(output, force, is_dir=False) as tmp:
        save_weights(src, tmp, dtype=TORCH_OUTTYPES[outtype])
    c = src.config
    return (f"--dim {c.hidden_size} --n_layers {c.num_hidden_layers} --use_moe {int(bool(c.use_moe))}")


def _no_reward(net, to):
    if is_reward(net):
        raise UserError(f"--to {to}: a reward model (train_reward.py) goes out as --to llama or --to minimind "
                        "(a transformers sequence classifier) or --to pth")


# ----------------------------------------------------------------------------------------- PEFT

def export_peft(net, adapter_path, output, outtype="f16", force=False):
    """A MiniMind LoRA file as a standard PEFT adapter folder (adapter_config.json +
    adapter_model.safetensors) that PeftModel.from_pretrained puts on the exported base
    (--to minimind or --to llama: the module names are the same)."""
    from model.lora import apply_lora, block_linears
    _no_reward(net, "peft")
    pm = apply_lora(net, adapter_path)
    cfg = pm.peft_config["default"]
    names = list(cfg.target_modules)
    short = sorted({n.rsplit(".", 1)[-1] for n in names})
    if set(names) == {n for n in block_linears(pm) if n.rsplit(".", 1)[-1] in short}:
        cfg.target_modules = set(short)  # every layer's q_proj, o_proj, ...: the usual short form
    cfg.task_type, cfg.inference_mode, cfg.base_model_name_or_path = "CAUSAL_LM", True, None
    dtype = TORCH_OUTTYPES[outtype]
    with torch.no_grad():
        for n, prm in pm.named_parameters():
            if ".lora_A." in n or ".lora_B." in n:
                prm.data = prm.data.to(dtype)
    with _Output(output, force, is_dir=True) as tmp:
        pm.save_pretrained(tmp, safe_serialization=True)
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            if not os.path.isfile(os.path.join(tmp, f)):
                raise RuntimeError(f"peft's save_pretrained wrote no {f}")
    return output


# ----------------------------------------------------------------------------------------- GGUF

def permute_for_gguf(w, n_head):
    """Reorder q/k projection rows from HF's rotate-half RoPE layout to GGUF's interleaved one.

    HF rotates dimension i with i + head_dim/2 inside each head; llama.cpp's llama architecture
    rotates adjacent pairs (2i, 2i+1). Moving the rows (not the math) keeps q.k identical,
    exactly as llama.cpp's convert_hf_to_gguf.py does for Llama.
    """
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def gguf_pre_tokenizer(tokenizer) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenization, or a UserError if it has none.

    Byte-level BPE with the GPT-2 split regex (MiniMind's tokenizer) is llama.cpp's "gpt-2".
    """
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    pre, norm = spec.get("pre_tokenizer") or {}, spec.get("normalizer")
    model = spec.get("model", {})
    if (model.get("type") == "BPE" and norm is None and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True) and not pre.get("add_prefix_space", False)):
        return "gpt-2"
    raise UserError(f"--to gguf: the tokenizer's pre-tokenizer ({pre.get('type')}, normalizer {norm and norm.get('type')}) "
                    "is not one llama.cpp knows; GGUF export supports byte-level BPE with the GPT-2 split "
                    "(MiniMind's tokenizer)")


def _gguf_vocab(tokenizer, vocab_size):
    import gguf
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _gguf_tensor(name, data, outtype):
    """(array, raw_dtype) for one tensor: 1-D stays f32 (llama.cpp needs it), matrices take outtype."""
    import gguf
    import numpy as np
    data = data.astype(np.float32)
    if data.ndim == 1 or outtype == "f32":
        return data, None
    if outtype == "q8_0":
        try:
            return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
        except gguf.quants.QuantError:
            pass  # row length not a multiple of the 32-value block: keep it f16, as llama.cpp does
    return data.astype(np.float16), None


GGUF_FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "q8_0": "MOSTLY_Q8_0"}


def _stack_experts(state, cfg):
    """llama.cpp holds each layer's experts as one 3-D tensor per projection (its converter's
    model.layers.N.mlp.experts.{gate,up,down}_proj): stacked here from the per-expert tensors."""
    import numpy as np
    out = {k: v for k, v in state.items() if ".mlp.experts." not in k}
    for b in range(cfg.num_hidden_layers):
        for proj in ("gate_proj", "up_proj", "down_proj"):
            out[f"model.layers.{b}.mlp.experts.{proj}.weight"] = np.stack(
                [state[f"model.layers.{b}.mlp.experts.{e}.{proj}.weight"] for e in range(cfg.n_routed_experts)])
    return out


def export_gguf(net, tokenizer, output, outtype="f16", force=False, name="MiniMind"):
    """A GGUF with the tokenizer embedded, and an Ollama Modelfile beside it: llama.cpp's llama architecture
    for MiniMind2 (dense), its qwen3 / qwen3moe ones for MiniMind-3."""
    import gguf
    _no_reward(net, "gguf")
    src = as_minimind(net)
    cfg = src.config
    qwen3 = getattr(cfg, "model_family", "minimind2") == "minimind3"
    if qwen3:
        qwen3_config_from(cfg)
        arch = gguf.MODEL_ARCH.QWEN3MOE if cfg.use_moe else gguf.MODEL_ARCH.QWEN3
    else:
        llama_config_from(cfg)  # refuses MoE with a one-line error
        arch = gguf.MODEL_ARCH.LLAMA
    pre = gguf_pre_tokenizer(tokenizer)
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = cfg.head_dim
    state = {k: v.detach().float().cpu().numpy() for k, v in src.state_dict().items()}
    if cfg.use_moe:
        state = _stack_experts(state, cfg)
    names = gguf.TensorNameMap(arch, cfg.num_hidden_layers)

    with _Output(output, force, is_dir=False) as tmp, tempfile.TemporaryDirectory() as tok_dir:
        w = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[arch])
        w.add_type(gguf.GGUFType.MODEL)
        w.add_name(name)
        w.add_context_length(cfg.max_position_embeddings)
        w.add_embedding_length(cfg.hidden_size)
        w.add_block_count(cfg.num_hidden_layers)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_rope_dimension_count(head_dim)
        w.add_rope_freq_base(float(cfg.rope_theta))
        yarn = yarn_of(cfg)
        if yarn:  # llama.cpp's YaRN keys, the same scaling as transformers' rope_parameters
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(float(yarn["factor"]))
            w.add_rope_scaling_orig_ctx_len(int(yarn["original_max_position_embeddings"]))
            w.add_rope_scaling_yarn_beta_fast(float(yarn.get("beta_fast", 32.0)))
            w.add_rope_scaling_yarn_beta_slow(float(yarn.get("beta_slow", 1.0)))
            if yarn.get("attention_factor") is not None:
                w.add_rope_scaling_attn_factors(float(yarn["attention_factor"]))
        w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
        if cfg.use_moe:  # qwen3moe: top-k of the routed experts, their weights renormalised
            w.add_expert_count(cfg.n_routed_experts)
            w.add_expert_used_count(cfg.num_experts_per_tok)
            w.add_expert_feed_forward_length(cfg.moe_intermediate_size)
        w.add_vocab_size(cfg.vocab_size)
        w.add_file_type(getattr(gguf.LlamaFileType, GGUF_FILE_TYPES[outtype]))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_sampling_temp(GEN_DEFAULTS["temperature"])
        w.add_sampling_top_p(GEN_DEFAULTS["top_p"])

        tokens, types = _gguf_vocab(tokenizer, cfg.vocab_size)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        # merges, bos/eos/unk/pad ids and the chat template, read the way llama.cpp's converter reads them
        save_tokenizer(tokenizer, tok_dir)
        special = gguf.SpecialVocab(tok_dir, load_merges=True, n_vocab=cfg.vocab_size)
        if not special.merges:
            raise UserError("--to gguf: the tokenizer has no BPE merges; GGUF export needs a BPE tokenizer")
        # ChatML prompts carry <|im_start|> themselves; llama.cpp must not prepend another.
        special.add_special_token.setdefault("bos", bool(getattr(tokenizer, "add_bos_token", False)))
        special.add_special_token.setdefault("eos", False)
        special.add_to_gguf(w, quiet=True)

        tied = cfg.tie_word_embeddings
        for key, data in state.items():
            if key == "lm_head.weight" and tied:
                continue  # llama.cpp falls back to token_embd for a missing output.weight
            gname = names.get_name(key, try_suffixes=(".weight",))
            if gname is None:
                raise RuntimeError(f"no GGUF name for {key}")
            # llama's RoPE in llama.cpp turns adjacent pairs; qwen3's (NEOX) turns halves, as transformers does
            if key.endswith("self_attn.q_proj.weight") and not qwen3:
                data = permute_for_gguf(data, n_head)
            elif key.endswith("self_attn.k_proj.weight") and not qwen3:
                data = permute_for_gguf(data, n_kv)
            arr, raw = _gguf_tensor(gname, data, outtype)
            w.add_tensor(gname, arr, raw_dtype=raw)

        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    modelfile = write_modelfile(output, force, family=getattr(cfg, "model_family", "minimind2"))
    return output, modelfile


def write_modelfile(gguf_path, force=False, family="minimind2"):
    """An Ollama Modelfile for the GGUF: ChatML with MiniMind2's default system prompt, or MiniMind-3's layout
    (no default system prompt; the answer opens after an empty think block, its thinking-off prompt); the
    sampling defaults."""
    path = os.path.splitext(gguf_path)[0] + ".Modelfile"
    if os.path.exists(path) and not force:
        print(f"kept the existing {path} (pass --force to rewrite it)", file=sys.stderr)
        return path
    minimind3 = family == "minimind3"
    text = (
        f"FROM ./{os.path.basename(gguf_path)}\n"
        'TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}\n'
        '{{ .Content }}<|im_end|>\n'
        '{{ end }}<|im_start|>assistant\n'
        + ('<think>\n\n</think>\n\n' if minimind3 else '') +
        '"""\n'
        + ('' if minimind3 else 'SYSTEM """You are a helpful assistant"""\n') +
        'PARAMETER stop "<|im_end|>"\n'
        'PARAMETER stop "<|im_start|>"\n'
        f'PARAMETER temperature {GEN_DEFAULTS["temperature"]}\n'
        f'PARAMETER top_p {GEN_DEFAULTS["top_p"]}\n'
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
