"""Chat with a MiniMind model under MiniMind's 2025-10 name and flags (eval_model.py is the same chat).

    python eval_llm.py --weight full_sft                       # out/full_sft_512.pth
    python eval_llm.py --weight reason --hidden_size 768 --num_hidden_layers 16
    python eval_llm.py --load_from ./MiniMind2                 # a transformers folder
    python eval_llm.py --weight rlhf --lora_weight lora_identity --historys 2

--weight picks the checkpoint {save_dir}/{weight}_{hidden_size}[_moe].pth and with it the kind of chat:
pretrain continues text, reason thinks first (its thinking shown apart), the others chat. As MiniMind's
eval_llm.py, each answer is sampled from the fixed seed 2026 (--seed changes it) and followed by its
decoding speed (--show_speed 0 hides it). Every eval_model.py flag works here too.
"""
import sys

from model.chat_cli import cli

if __name__ == "__main__":
    sys.exit(cli(prog="eval_llm.py", later_names=True))
