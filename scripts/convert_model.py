"""Convert a MiniMind model between the project's .pth weights and the formats other tools load.

    --to minimind  transformers directory with MiniMindForCausalLM; its modelling file travels in the
                   folder (config.json auto_map), so AutoModelForCausalLM.from_pretrained(dir,
                   trust_remote_code=True) works with nothing but transformers installed. Dense and MoE.
    --to llama     transformers directory with plain LlamaForCausalLM (no remote code): what vLLM, TGI
                   and llama.cpp's own converter take. Dense models only.
    --to qwen3     transformers directory with plain Qwen3ForCausalLM / Qwen3MoeForCausalLM (no remote code) for a
                   MiniMind-3 model (--model_family minimind3): what vLLM and llama.cpp load natively.
    --to gguf      one llama-architecture GGUF file with the tokenizer embedded (f32 / f16 / q8_0) for
                   llama.cpp and Ollama; an Ollama Modelfile is written next to it.
    --to pth       back from a transformers directory (either format) to a .pth state_dict.
    --to peft      a LoRA adapter (--lora_name) as a PEFT adapter folder for the exported base.
With --lora_name NAME every other format gets {out_dir}/lora/NAME_{dim}[_moe].pth merged in.
A reward model (train_reward.py's reward_{dim}.pth, --weight reward) goes out as a sequence classifier:
--to llama gives LlamaForSequenceClassification, --to minimind MiniMindForSequenceClassification, and
--to pth takes either back.

The source is chosen as in eval_model.py: {out_dir}/{pretrain|full_sft|rlhf}_{dim}[_moe].pth from
--model_mode (or --weight NAME / --weight PATH.pth) with --dim/--n_layers/--use_moe, or a transformers
directory with --model_path DIR.

    python scripts/convert_model.py --to minimind --dim 512 --n_layers 8 --output MiniMind2-Small
    python scripts/convert_model.py --to llama    --dim 512 --n_layers 8 --output MiniMind2-Small-Llama
    python scripts/convert_model.py --to gguf --outtype q8_0 --dim 512 --n_layers 8 --output minimind2-small.gguf
    python scripts/convert_model.py --to pth --model_path MiniMind2-Small --output out/full_sft_512.pth
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from model.export import (export_gguf, export_llama, export_minimind, export_peft, export_pth,  # noqa: E402
                          export_qwen3, llama_config_from, qwen3_config_from)
from model.loading import add_source_args, load_source, source_is_dir  # noqa: E402
from model.reward import load_reward_source  # noqa: E402
from trainer.args import ArgumentParser, build_config  # noqa: E402
from trainer.errors import UserError, run_main  # noqa: E402


# ---------------------------------------------------------------------------------------- the CLI

def get_parser():
    # 'resolve': --max_seq_len (a training flag from add_model_args) means nothing to a conversion
    p = ArgumentParser(description="Convert MiniMind weights: .pth <-> transformers (MiniMind / Llama), "
                                   "and to GGUF for llama.cpp / Ollama", conflict_handler="resolve")
    add_source_args(p)
    p.add_argument("--max_seq_len", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--to", required=True, choices=["minimind", "llama", "qwen3", "gguf", "pth", "peft"],
                   help="minimind: transformers dir with remote code; llama: LlamaForCausalLM dir (MiniMind2); "
                        "qwen3: Qwen3ForCausalLM / Qwen3MoeForCausalLM dir (MiniMind-3); "
                        "gguf: llama.cpp / Ollama file; pth: state_dict for the training scripts; "
                        "peft: the --lora_name adapter alone, as a PEFT adapter folder")
    p.add_argument("--output", "-o", required=True,
                   help="directory (minimind, llama, qwen3, peft) or file (gguf, pth) to write")
    p.add_argument("--outtype", choices=["f32", "f16", "bf16", "q8_0"], default="f16",
                   help="stored precision (default f16, as MiniMind2 ships); q8_0 is GGUF only")
    p.add_argument("--name", default="MiniMind", help="model name written into the GGUF (default %(default)s)")
    p.add_argument("--force", action="store_true", help="replace an existing --output")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    if args.outtype == "q8_0" and args.to != "gguf":
        raise UserError("--outtype q8_0 is for --to gguf; transformers and .pth exports take f32, f16 or bf16")
    if args.outtype == "bf16" and args.to == "gguf":
        raise UserError("--to gguf takes --outtype f32, f16 or q8_0")
    if args.to == "peft" and not args.lora_name:
        raise UserError("--to peft writes a LoRA adapter as a PEFT folder: pass --lora_name NAME "
                        "(and the base's --model_mode/--dim/--n_layers)")
    if args.to == "pth" and not source_is_dir(args):
        raise UserError("--to pth converts a transformers directory back to .pth: pass --model_path DIR")
    if not source_is_dir(args):  # refuse what the format cannot hold before anything is read
        if args.to == "llama" or (args.to == "gguf" and args.model_family == "minimind2"):
            llama_config_from(build_config(args))  # MoE, MiniMind-3
        elif args.to == "qwen3" or args.to == "gguf":
            qwen3_config_from(build_config(args))  # MiniMind2
    out_abs = os.path.abspath(args.output)
    if args.model_path and out_abs == os.path.abspath(args.model_path):
        raise UserError(f"{args.output}: is the source directory; write the export somewhere else")

    reward = load_reward_source(args)  # a reward model (train_reward.py): a sequence classifier goes out
    if reward is not None and args.to in ("gguf", "peft"):
        raise UserError(f"--to {args.to}: {reward[2]} is a reward model; export it with --to llama "
                        "(LlamaForSequenceClassification), --to minimind or --to pth")
    net, tokenizer, where = reward or load_source(args, merge_lora=args.to != "peft")
    n_params = sum(p.numel() for p in {id(p): p for p in net.parameters()}.values())
    print(f"read {where}: {n_params / 1e6:.2f}M parameters")
    if args.to == "minimind":
        export_minimind(net, tokenizer, args.output, args.outtype, args.force)
        kind = "SequenceClassification" if reward else "CausalLM"
        print(f"wrote {args.output} (MiniMindFor{kind}, {args.outtype}); load it with "
              f"AutoModelFor{kind}.from_pretrained({args.output!r}, trust_remote_code=True)")
    elif args.to == "llama":
        export_llama(net, tokenizer, args.output, args.outtype, args.force)
        if reward:
            print(f"wrote {args.output} (LlamaForSequenceClassification, {args.outtype}); load it with "
                  f"AutoModelForSequenceClassification.from_pretrained({args.output!r}), or pass it to "
                  "train_grpo.py --reward_model_path")
        else:
            print(f"wrote {args.output} (LlamaForCausalLM, {args.outtype}); e.g. vllm serve {args.output}")
    elif args.to == "qwen3":
        export_qwen3(net, tokenizer, args.output, args.outtype, args.force)
        arch = "Qwen3MoeForCausalLM" if getattr(net.config, "use_moe", False) else "Qwen3ForCausalLM"
        print(f"wrote {args.output} ({arch}, {args.outtype}); e.g. vllm serve {args.output}")
    elif args.to == "gguf":
        _, modelfile = export_gguf(net, tokenizer, args.output, args.outtype, args.force, name=args.name)
        arch = {"minimind3": "qwen3moe" if getattr(net.config, "use_moe", False) else "qwen3"}.get(
            getattr(net.config, "model_family", "minimind2"), "llama")
        print(f"wrote {args.output} (GGUF {arch}, {args.outtype}) and {modelfile}; "
              f"e.g. ollama create minimind -f {modelfile}")
    elif args.to == "peft":
        from model.lora import find_adapter
        c = net.config
        adapter = find_adapter(args.out_dir, args.lora_name, c.hidden_size, bool(getattr(c, "use_moe", False)))
        export_peft(net, adapter, args.output, args.outtype, args.force)
        print(f"wrote {args.output} (PEFT LoRA adapter of {adapter}, {args.outtype}); load it with "
              f"PeftModel.from_pretrained(base, {args.output!r}) on this base exported with --to minimind or llama")
    else:
        flags = export_pth(net, args.output, args.outtype, args.force, where)
        print(f"wrote {args.output}; load it with {flags}")


if __name__ == "__main__":
    run_main(main)
