"""Scoring the demo's models: the held-out questions asked greedily, the keyword rule, the 2-hop figures."""
import json
import os

from demo.common import ROOT, DemoError, rel, say, thinking_on


def read_heldout(path):
    if not os.path.exists(path):
        raise DemoError(f"{rel(path)}: not found; --data_dir must hold heldout.jsonl "
                        "(the bundled one is dataset/demo; regenerate it with scripts/make_demo_data.py)")
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                q, kws = item["question"], item["keywords"]
                if not isinstance(q, str) or not isinstance(kws, list) or not kws:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                raise DemoError(f"{rel(path)}:{n}: expected a JSON object with \"question\" (text) and "
                                "\"keywords\" (a non-empty list); fix the line or regenerate the file")
            item.setdefault("distractors", [])
            items.append(item)
    if not items:
        raise DemoError(f"{rel(path)}: no questions in it")
    return items


def is_right(answer, item):
    """The corpus's rule: every keyword and none of the distractors, case-insensitively; and an
    answer about another entity than the one asked is wrong, whatever it names (a 2-hop question
    about Cobble answered "Fenn's home city, Drask, is the capital of Kiravo")."""
    a = answer.lower()
    return all(k.lower() in a for k in item["keywords"]) and not any(d.lower() in a for d in item["distractors"]) \
        and not any(o.lower() in a for o in other_subjects(item))


def other_subjects(item):
    """The names of the same kind as the entity a question is about (other characters, other
    cities), in its language: naming one means answering about someone else."""
    from demo.world import WORDS
    entity = item.get("entity")
    for group in ("characters", "cities"):
        for pair in WORDS.get(group, []):
            if entity in pair:
                li = pair.index(entity)
                return [p[li] for p in WORDS[group] if p[li] != entity and p[li] not in item["keywords"]]
    return []


def load_checkpoint(args, weight):
    """(model in eval mode on --device, tokenizer) of {out_dir}/{weight}_{dim}.pth; a missing or mismatched
    file is the demo's one-line error."""
    import torch
    from model.loading import load_pth, model_size, tokenizer_for
    from trainer.errors import UserError
    torch.set_num_threads(args.threads)
    try:
        net = load_pth(os.path.join(args.out_dir, f"{weight}_{args.dim}.pth"),
                       model_size(args.dim, args.n_layers, model_family=args.model_family))
    except UserError as e:
        raise DemoError(str(e))
    net = net.to(args.device).eval()
    return net, tokenizer_for(net, os.path.join(ROOT, "model"))


def ask_all(args, model_mode, items, max_new_tokens=None, weight=None, lora=None, enable_thinking=None):
    """Greedy answers of one checkpoint to every held-out question, printed as they come.

    --model_mode 3 (reason): the answer part is scored; the thinking and whether the output's
    <think>/<answer> tags are well formed are recorded too. enable_thinking=False: the template's
    thinking-off prompt (an empty think block opens the answer); whether the output still holds a think
    tag is recorded."""
    import argparse
    import io
    import torch
    from model.chat import Chat
    from model.loading import REASON_MODE, load_model
    from model.reasoning import is_well_formed
    from trainer.errors import UserError
    torch.set_num_threads(args.threads)
    if model_mode == REASON_MODE and enable_thinking is None:
        enable_thinking = thinking_on(args)  # a MiniMind-3 reason model is asked to think
    # eval_model.py's settings: greedy, not streamed, float32, the repo's tokenizer
    settings = argparse.Namespace(
        out_dir=args.out_dir, dim=args.dim, n_layers=args.n_layers, use_moe=False, device=args.device,
        model_family=getattr(args, "model_family", "minimind2"),
        dtype="float32", tokenizer_path=os.path.join(ROOT, "model"), model_mode=model_mode, weight=weight,
        lora_name=lora, load=0, model_path=None, temperature=0.0, top_p=0.85, stream=0, seed=0, history_cnt=0,
        max_new_tokens=max_new_tokens or args.max_new_tokens, show_think=1, enable_thinking=enable_thinking)
    try:
        net, tok = load_model(settings)
    except UserError as e:
        raise DemoError(str(e))
    results = []
    for item in items:
        chat = Chat(net, tok, settings, out=io.StringIO())  # fresh: no history between questions
        answer = " ".join(chat.ask(item["question"]).split())
        ok = is_right(answer, item)
        results.append({"question": item["question"], "answer": answer, "right": ok,
                        "keywords": item["keywords"], "lang": item.get("lang")})
        think = ""
        if model_mode == REASON_MODE:
            results[-1].update(output=chat.raw, well_formed=is_well_formed(chat.raw),
                               think=" ".join((chat.reasoning or "").split()),
                               think_block=any(t in chat.raw for t in ("<think>", "</think>")))
            if enable_thinking is False:
                think = "   [a think block]" if results[-1]["think_block"] else ""
            else:
                think = (f"   [think: {results[-1]['think']}]" if results[-1]["think"] else "   [no thinking]") \
                    + ("" if results[-1]["well_formed"] else " [tags malformed]")
        say(f"  {'✓' if ok else '✗'} {item['question']}  →  {answer}"
            + ("" if ok else f"   (expected: {', '.join(item['keywords'])})") + think)
    return results


REASON_MAX_NEW_TOKENS = 128  # thinking + answer + tags: about 70 tokens in the demo's reasoning set


def reason_eval(args, items, one_hop=None, dpo_one_hop=None):
    """The reasoning stage's figures on the 2-hop held-out questions: the reason model's accuracy
    (its answer part), the DPO model's accuracy asked the same questions directly, and the share of
    the reason model's outputs with well-formed <think>/<answer> tags. With the 1-hop held-out
    questions (`one_hop`) and the DPO model's answers to them: adaptive thinking's "off" side, the
    reason model asked them with thinking off (its accuracy, and how many outputs still think)."""
    say("\n  2-hop held-out questions (reason_heldout.jsonl: two facts each, stated in pretraining, "
        "never chained in training)")
    say(f"\n  reason model ({rel(os.path.join(args.out_dir, f'reason_{args.dim}.pth'))}), thinking first:")
    res = ask_all(args, 3, items, max_new_tokens=REASON_MAX_NEW_TOKENS)
    say(f"\n  DPO model ({rel(os.path.join(args.out_dir, f'rlhf_{args.dim}.pth'))}), the same questions asked directly:")
    direct = ask_all(args, 2, items)
    out = {"reason": {"right": sum(r["right"] for r in res), "total": len(res), "answers": res},
           "dpo_direct": {"right": sum(r["right"] for r in direct), "total": len(direct), "answers": direct},
           "well_formed": {"count": sum(r["well_formed"] for r in res), "total": len(res)},
           # stricter than the keyword rule: the thinking states both facts of the chain, as worded in the data
           "chain_in_think": {"count": sum(chain_in_think(r, it) for r, it in zip(res, items)), "total": len(res)}}
    if one_hop:
        say("\n  1-hop held-out questions (heldout.jsonl), the reason model with thinking off "
            "(enable_thinking false: the prompt opens the answer with an empty think block):")
        off = ask_all(args, 3, one_hop, enable_thinking=False)
        out["thinking_off"] = {"right": sum(r["right"] for r in off), "total": len(off),
                               "think_block": sum(r["think_block"] for r in off), "answers": off,
                               "dpo_right": sum(r["right"] for r in dpo_one_hop or [])}
    say("")
    for line in reason_summary(out):
        say("  " + line)
    return out


def chain_in_think(result, item):
    """Whether the reason model's thinking states both facts of the held-out chain."""
    return bool(item.get("chain")) and all(" ".join(c.split()) in result["think"] for c in item["chain"])


def reason_summary(r):
    wf, ch = r["well_formed"], r["chain_in_think"]
    return [f"2-hop held-out accuracy: {r['reason']['right']}/{r['reason']['total']} (reason model, thinking first), "
            f"{r['dpo_direct']['right']}/{r['dpo_direct']['total']} (DPO model asked directly)",
            f"well-formed <think>/<answer> tags: {wf['count']}/{wf['total']} "
            f"({100 * wf['count'] / max(wf['total'], 1):.0f}%) of the reason model's outputs",
            f"thinking states both facts of the chain: {ch['count']}/{ch['total']}"] + thinking_off_summary(r)


def thinking_off_summary(r):
    off = r.get("thinking_off")
    if not off:
        return []
    return [f"thinking off, 1-hop held-out accuracy: {off['right']}/{off['total']} (reason model), "
            f"{off['dpo_right']}/{off['total']} (DPO model); outputs still holding a think tag: "
            f"{off['think_block']}/{off['total']}"]
