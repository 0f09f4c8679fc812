"""Chat with a trained MiniMind model (or let it continue text, for a pretrained one).

    python eval_model.py --model_mode 1 --n_layers 16 --dim 768        # out/full_sft_768.pth
    printf '1\\nWhat is DPO?\\n' | python eval_model.py --model_mode 2  # out/rlhf_512.pth, piped
    python eval_model.py --load 1 --model_path ./MiniMind2              # a save_pretrained directory
    python eval_model.py --tools all                                    # with MiniMind's six tools

--model_mode picks the checkpoint as MiniMind2 does: 0 = pretrain (plain text continuation, no
chat template), 1 = full_sft, 2 = rlhf, 3 = reason, read from {out_dir}/{name}_{dim}[_moe].pth;
--weight NAME reads {out_dir}/NAME_{dim}[_moe].pth (or a .pth path) instead. A reason model's
<think> part is printed after 💭 (dimmed at a terminal; --show_think 0 hides it), its answer after
🤖️ without the tags, and only the answer is kept in the history. At start the script asks for
[0] the built-in prompt list or [1] questions typed (or piped) one per line until an empty line or
end of input; --mode 0/1 answers that question up front.

The model is loaded by model/loading.py and answers through model/chat.py's Chat: the model's own
generate() (KV cache, temperature / top-p sampling), streamed from a background thread, so a
multi-byte character is printed only once all its bytes are there. --history_cnt N keeps the last N messages (a question and its
answer are two) in the prompt, as MiniMind2: an even number keeps whole exchanges.

--tools all|name,name|file.py:function lets the model call tools (model/tools.py; the chat template puts
their signatures in the prompt): each call is run, printed (📞 the call, ✅ its result) and fed back as a
`tool` message, and the model goes on, at most --max_turns model turns per question (model/agent.py).
"""
import sys

from model.chat_cli import cli

if __name__ == "__main__":
    sys.exit(cli())
