"""The demo world's reasoning sets: 2-hop questions in R1 format, and held-out ones (demo/corpus.py writes them).

2-hop questions, each needing two facts of the world:

    home_country     "Which country is Wopp's home city the capital of?"
                     think: Wopp lives in Sunmar. / Sunmar is the capital of Tarnis.
    capital_flag     "What colour is the flag of the country whose capital is Sunmar?"
    capital_animal   think: Sunmar is the capital of Tarnis. / The flag of Tarnis is blue.
    capital_dish     (and the same for the national animal and the famous food)

answered as "<think>\\n{fact 1}\\n{fact 2}\\n</think>\\n<answer>\\n{conclusion}\\n</answer>", in English and
Chinese. A quarter of the chains (a quarter of each kind) are held out: pretraining states both of
their facts, but no reasoning sample chains them (a held-out character's home city is never stated
in reason.jsonl; a held-out city's capital fact is, in its other chains);
reason_heldout.jsonl asks them, scored like heldout.jsonl (every keyword, none of the distractors).

    reason.jsonl          {"conversations": [...]}, SFT format, assistant content in R1 format
    reason_heldout.jsonl  {"question", "answer", "think", "keywords", "distractors", "lang",
                           "entity", "attribute", "chain": [fact 1, fact 2], "in_rlaif"}: each held-out
                          chain in every wording
    rlaif.jsonl           GRPO's prompts (MiniMind's RLAIF format): each held-out chain in one of its
                          wordings (in_rlaif above), "gt": [the answer's keyword], no answer text
"""
from dataset.token_cache import EMPTY_THINK  # MiniMind 2025-10's direct answer: thinking off
from demo.world import LANGS, TABLES, group_rows

REASON_HELDOUT_FRACTION = 0.25

# The second hop of a capital_* chain: the attribute of the country (demo/world.py's ATTRS keys).
COUNTRY_ATTRS = ("flag", "animal", "dish")

# kind -> {"en": [questions], "zh": [questions]}, world.md's "2-hop questions" table ({n}: the
# character of home_country, the city of capital_*)
HOPS = {kind: {lang: [row[li] for row in rows] for li, lang in enumerate(LANGS)}
        for kind, rows in group_rows(TABLES["2-hop questions"]).items()}
HOME_COUNTRY_ANSWER = {"en": "{n}'s home city, {c}, is the capital of {k}.", "zh": "{n}住的{c}是{k}的首都。"}
CAPITAL_SAY = {"en": "{c} is the capital of {k}.", "zh": "{c}是{k}的首都。"}
CHITCHAT_THINK = {"en": "The user is chatting, not asking about the world.\nA short, friendly reply fits.",
                  "zh": "用户在闲聊，不是在问这个世界的事。\n简短友好地回答就好。"}


def r1(think_lines, conclusion):
    return "<think>\n" + "\n".join(think_lines) + "\n</think>\n<answer>\n" + conclusion + "\n</answer>"


def chains(facts, answer):
    """Every 2-hop chain of the world: dict(kind, entity, lang -> (question templates filled later),
    think lines, conclusion, keyword, distractors), one per language.

    answer(fact, lang) is demo/world.py's answer: the SFT answer sentence of a fact."""
    langs = ("en", "zh")
    capital_of = {f["value"]: f for f in facts if f["attr"] == "capital"}  # city -> capital fact
    by_country = {}
    for f in facts:
        by_country.setdefault(f["entity"], {})[f["attr"]] = f
    countries = [f["entity"] for f in facts if f["attr"] == "capital"]
    out = []
    for f in facts:
        if f["attr"] != "home":
            continue
        cap = capital_of[f["value"]]
        out.append(dict(kind="home_country", entity=f["entity"], per_lang={
            lang: dict(think=[answer(f, lang), CAPITAL_SAY[lang].format(c=f["value"][li], k=cap["entity"][li])],
                       conclusion=HOME_COUNTRY_ANSWER[lang].format(n=f["entity"][li], c=f["value"][li], k=cap["entity"][li]),
                       keyword=cap["entity"][li],
                       distractors=[c[li] for c in countries if c != cap["entity"]])
            for li, lang in enumerate(langs)}))
    for country in countries:
        cap = by_country[country]["capital"]
        for attr in COUNTRY_ATTRS:
            g = by_country[country][attr]
            out.append(dict(kind="capital_" + attr, entity=cap["value"], per_lang={
                lang: dict(think=[CAPITAL_SAY[lang].format(c=cap["value"][li], k=country[li]), answer(g, lang)],
                           conclusion=answer(g, lang), keyword=g["value"][li],
                           distractors=None)  # filled by the caller from the attribute's pool
                for li, lang in enumerate(langs)}, attr=attr))
    return out




def direct_answers(rng, facts, held, ask, answer):
    """Adaptive thinking's other half: each trained 1-hop fact asked once in each language (a random
    wording), answered directly after an empty think block, as MiniMind's 2025-10 SFT data does;
    train_distill_reason.py's --empty_think_ratio keeps the block in a share of them. (One language
    per fact was too few: the reasoning stage's strong step then wore away SFT's heed of *what* is
    asked, and the direct answers named another attribute.)"""
    from demo.world import ATTRS
    rows = []
    for i, f in enumerate(facts):
        if i in held:
            continue
        for lang in LANGS:
            for k in range(len(ATTRS[f["attr"]][lang + "_ask"])):
                rows.append([{"role": "user", "content": ask(f, lang, k)},
                             {"role": "assistant", "content": EMPTY_THINK + answer(f, lang)}])
    return rows


def make_reason_sets(rng, facts, answer, pools, chitchat, direct=()):
    """{"reason": SFT rows, "reason_heldout": held-out rows, "rlaif": GRPO prompts, "_held": held-out chain ids}.

    pools[attr]: every (en, zh) value of a country attribute (for the distractors);
    chitchat[lang]: (question, polite answer, rude answer) triples, answered in R1 format too;
    direct: conversations answered without thinking (direct_answers), mixed in."""
    langs = ("en", "zh")
    check_wording({w for f in facts for part in ("entity", "value") for w in f[part]})
    all_chains = chains(facts, answer)
    for c in all_chains:
        if c["kind"] != "home_country":
            for li, lang in enumerate(langs):
                d = c["per_lang"][lang]
                d["distractors"] = [v[li] for v in pools[c["attr"]] if v[li] != d["keyword"]]
    held = set()
    for kind in HOPS:
        idx = [i for i, c in enumerate(all_chains) if c["kind"] == kind]
        rng.shuffle(idx)
        held.update(idx[:max(1, round(len(idx) * REASON_HELDOUT_FRACTION))])
    train_rows, held_rows, rl_rows = [], [], []
    for i, c in enumerate(all_chains):
        for li, lang in enumerate(langs):
            d = c["per_lang"][lang]
            name = c["entity"][li]
            templates = HOPS[c["kind"]][lang]
            if i in held:
                # every wording is asked (60 questions, so that 10 points are more than noise); GRPO's
                # prompts ask one of them, with the answer's keyword as "gt" and no answer text
                k = rng.randrange(len(templates))
                rl_rows.append({"conversations": [{"role": "user", "content": templates[k].format(n=name)},
                                                  {"role": "assistant", "content": ""}], "gt": [d["keyword"]]})
                for j, t in enumerate(templates):
                    held_rows.append({"question": t.format(n=name), "answer": d["conclusion"],
                                      "think": "\n".join(d["think"]), "keywords": [d["keyword"]],
                                      "distractors": d["distractors"], "lang": lang, "entity": name,
                                      "attribute": c["kind"], "chain": d["think"], "in_rlaif": j == k})
                continue
            for t in templates:
                train_rows.append([{"role": "user", "content": t.format(n=name)},
                                   {"role": "assistant", "content": r1(d["think"], d["conclusion"])}])
    for lang in langs:
        for q, good, _ in chitchat[lang]:
            train_rows.append([{"role": "user", "content": q},
                               {"role": "assistant", "content": r1(CHITCHAT_THINK[lang].split("\n"), good)}])
    train_rows += [list(c) for c in direct]
    rng.shuffle(train_rows)
    rng.shuffle(held_rows)
    rl_rows.sort(key=lambda r: r["conversations"][0]["content"])  # (the rng's stream stays reason.jsonl's)
    return {"reason": [{"conversations": c} for c in train_rows], "reason_heldout": held_rows, "rlaif": rl_rows,
            "_held": held}


def check_wording(answer_words):
    """No answer word may hide in the questions' fixed wording (a keyword match must be sound)."""
    wording = [t for spec in HOPS.values() for lang in ("en", "zh") for t in spec[lang]]
    wording += list(HOME_COUNTRY_ANSWER.values()) + list(CAPITAL_SAY.values()) + list(CHITCHAT_THINK.values())
    for w in answer_words:
        for t in wording:
            assert w.lower() not in t.lower(), (w, t)


def reason_readme(sets):
    train, held = sets["reason"], sets["reason_heldout"]
    kinds = [k for k in HOPS if any(r["attribute"] == k for r in held)]
    return "\n".join([
        "",
        "## The reasoning set (train_distill_reason.py)",
        "",
        f"`reason.jsonl` ({len(train)} lines) is SFT data in DeepSeek-R1's format: its reasoning answers are",
        "`<think>\\n...\\n</think>\\n<answer>\\n...\\n</answer>`. Its questions need two facts of the world",
        "(\"Which country is Wopp's home city the capital of?\": Wopp lives in Sunmar; Sunmar is the capital",
        "of Tarnis), which the thinking states before the answer; a few chit-chat turns think briefly too.",
        f"{sum(r['conversations'][-1]['content'].startswith(EMPTY_THINK) for r in train)} of its lines are "
        "adaptive thinking's other half: a trained 1-hop question answered directly after an empty",
        "think block, `<think>\\n\\n</think>\\n\\n` (MiniMind's 2025-10 format; `--empty_think_ratio` keeps the",
        "block in a share of them).",
        f"`reason_heldout.jsonl` ({len(held)} lines) asks 2-hop questions whose facts pretraining states but",
        "which no reasoning sample chains: a quarter of each kind of chain",
        "(" + ", ".join(f"`{k}`" for k in kinds) + "). Its lines are those of `heldout.jsonl` plus",
        "`think` and `chain` (the two facts). scripts/demo.py scores the reason model's answer part on",
        "them, the DPO model asked the same questions directly, and the rate of well-formed tags.",
        "",
        "## The GRPO prompts (train_grpo.py)",
        "",
        f"`rlaif.jsonl` ({len(sets['rlaif'])} lines) is MiniMind's RLAIF format: the held-out 2-hop chains, each in",
        "one of its wordings (`in_rlaif` in `reason_heldout.jsonl`), with `\"gt\"`: the answer's keyword. No line",
        "holds an answer: GRPO samples answers and is rewarded when one names the keyword. `reason_heldout.jsonl`",
        f"asks the same chains in all their wordings, {sum(not r['in_rlaif'] for r in held)} of its questions in",
        "words GRPO never saw.",
        "",
    ])
