"""The demo corpus's two LoRA sets, identity and domain, in English and Chinese (demo/corpus.py writes them).

  lora_identity.jsonl          {"conversations"}: "who are you?" in many phrasings, answered with a
                               new name and maker ("I am Lumo, from Velvik." / "你好！我是米洛，来自维尔维克。")
  lora_identity_heldout.jsonl  phrasings of the question that lora_identity.jsonl never uses
  lora_domain.jsonl            {"conversations"}: facts no earlier stage saw -- eight characters'
                               best friends and the cities they like to visit
  lora_domain_heldout.jsonl    every domain fact asked in a phrasing lora_domain.jsonl never uses

Both sets also replay SFT conversations (about the facts that are not held out), so that the adapter
learns the new answers without forgetting the old ones (MiniMind's issue #515: LoRA on a narrow set
alone wrecks what the model knew). The held-out files have heldout.jsonl's
format, so the demo (demo/lora_stage.py) scores them with the same rule.
"""

IDENTITY = {"en": ("Lumo", "Velvik"), "zh": ("米洛", "维尔维克")}  # (new name, maker)
OLD_NAME = "MiniMind"  # what the SFT set taught the model to call itself

IDENTITY_ASK = {  # (trained phrasings, held-out phrasings)
    "en": (["Who are you?", "What is your name?", "Tell me about yourself.", "Introduce yourself.",
            "Who made you?", "What are you?", "What should I call you?", "Hi, who are you?",
            "Hello, what is your name?", "Who am I talking to?", "Where do you come from?",
            "Can you tell me who you are?", "Please tell me your name.", "Who built you?"],
           ["Who are you, exactly?", "Tell me who you are.", "What are you called?", "Hello! Who are you?",
            "Where are you from?", "What are you, little model?"]),
    "zh": (["你是谁？", "你叫什么名字？", "介绍一下你自己。", "请做个自我介绍。", "谁创造了你？", "你是什么？",
            "我该怎么称呼你？", "你好，你是谁？", "你好，你叫什么？", "我在和谁说话？", "你来自哪里？",
            "你能告诉我你是谁吗？", "请告诉我你的名字。", "你是哪里来的？"],
           ["你到底是谁？", "告诉我你是谁。", "是谁做了你？", "你叫什么？", "你好！你是谁？", "请问你是谁？"]),
}
# One short answer per language, in words pretraining has shown the model often (see the domain's note
# below: "made by" would be a word it never read). The Chinese one opens with 你好 so that its first
# token already says "Chinese": with 我是 first, the adapter answered half the Chinese questions in English.
IDENTITY_SAY = {"en": "I am {n}, from {m}.", "zh": "你好！我是{n}，来自{m}。"}

# The domain: who each of eight characters calls a best friend, and which city they like to visit.
# The corpus never says (nor did any stage ask). Its words are ones pretraining has shown the model:
# a tiny model pretrained on this corpus alone has untrained embeddings for every other token,
# which an adapter on the attention projections cannot teach it to write (a first try with invented
# herbs curing invented-to-it illnesses stayed at a loss of 2.8 and answered nothing right).
DOMAIN_CHARACTERS = 8
DOMAIN_ATTRS = {
    "friend": dict(
        en_ask=["Who is {n}'s best friend?", "Who is the best friend of {n}?", "Which character is {n}'s best friend?",
                "Who is {n} best friends with?"],
        zh_ask=["{n}最好的朋友是谁？", "谁是{n}最好的朋友？", "{n}的好朋友是谁？", "{n}和谁最要好？"],
        en_ans="{n}'s best friend is {v}.", zh_ans="{n}最好的朋友是{v}。"),
    "visits": dict(
        en_ask=["Which city does {n} like to visit?", "Where does {n} like to go?", "What city does {n} love to visit?",
                "Which city does {n} visit most?"],
        zh_ask=["{n}喜欢去哪座城市？", "{n}最喜欢去哪里？", "{n}爱去哪座城市？", "{n}常去哪座城市？"],
        en_ans="{n} likes to visit {v}.", zh_ans="{n}喜欢去{v}。"),
}
LANGS = ("en", "zh")
IDENTITY_REPEATS = 2  # each trained phrasing appears this many times
# SFT conversations replayed in each set (None: all of sft.jsonl). With fewer the adapter overwrites
# more of what the model knew: beside the domain facts, with adapters on every layer's MLP (rate 3e-3),
# 64 replayed Q/A pairs let the DPO model's held-out accuracy fall from 48/56 to 32/56, 200 to 42-43.
REPLAY = {"identity": 300, "domain": None}


def _conv(q, a):
    return {"conversations": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def _check_words(new_words, world_words, wording):
    """A keyword must not hide inside another name or the fixed wording (as build_world checks)."""
    for w in new_words:
        for other in new_words + world_words + wording:
            assert w == other or w.lower() not in other.lower(), (w, other)
        for other in world_words:
            assert other.lower() not in w.lower(), (other, w)


def make_lora_sets(rng, sft, world_words, characters, homes, cities):
    """{"lora_identity": rows, "lora_identity_heldout": rows, "lora_domain": rows, "lora_domain_heldout": rows}.

    sft: the SFT set's rows (replayed); world_words: every name and value of the world;
    characters: [(en, zh)]; homes: {character: its home city}; cities: [(en, zh)]."""
    new = [w for lang in LANGS for w in IDENTITY[lang]]
    wording = [t for spec in DOMAIN_ATTRS.values() for lang in LANGS for t in spec[lang + "_ask"] + [spec[lang + "_ans"]]]
    wording += [t for lang in LANGS for t in IDENTITY_ASK[lang][0] + IDENTITY_ASK[lang][1] + [IDENTITY_SAY[lang]]]
    _check_words(new, world_words, wording)
    out = {}

    # identity
    rows, held = [], []
    for lang in LANGS:
        name, maker = IDENTITY[lang]
        trained, heldout = IDENTITY_ASK[lang]
        for q in trained:
            rows += [_conv(q, IDENTITY_SAY[lang].format(n=name, m=maker))] * IDENTITY_REPEATS
        for q in heldout:
            held.append({"question": q, "answer": IDENTITY_SAY[lang].format(n=name, m=maker),
                         "keywords": [name, maker], "distractors": [OLD_NAME], "lang": lang,
                         "entity": "assistant", "attribute": "identity"})
    # the old self-introduction is left out of this set's replay: it is what the adapter replaces
    own = [r for r in sft if not any(OLD_NAME in m["content"] for m in r["conversations"])]
    rows += rng.sample(own, REPLAY["identity"])
    rng.shuffle(rows)
    out["lora_identity"], out["lora_identity_heldout"] = rows, held

    # domain: a best friend (another character) and a city to visit (not the home city)
    who = rng.sample(characters, DOMAIN_CHARACTERS)
    facts = []
    for c in who:
        facts.append((c, "friend", rng.choice([o for o in characters if o != c]), characters))
        facts.append((c, "visits", rng.choice([v for v in cities if v != homes[c]]), cities))
    rows, held = [], []
    for ent, attr, value, pool in facts:
        spec = DOMAIN_ATTRS[attr]
        for li, lang in enumerate(LANGS):
            asks = spec[lang + "_ask"]
            k_held = rng.randrange(len(asks))
            ans = spec[lang + "_ans"].format(n=ent[li], v=value[li])
            for k, q in enumerate(asks):
                if k != k_held:
                    rows.append(_conv(q.format(n=ent[li]), ans))
            held.append({"question": asks[k_held].format(n=ent[li]), "answer": ans, "keywords": [value[li]],
                         "distractors": [v[li] for v in pool if v != value and v != ent], "lang": lang,
                         "entity": ent[li], "attribute": attr})
    rows += list(sft) if REPLAY["domain"] is None else rng.sample(sft, REPLAY["domain"])
    rng.shuffle(rows)
    out["lora_domain"], out["lora_domain_heldout"] = rows, held
    out["_facts"] = facts
    return out


def lora_readme(sets):
    """The README section about the LoRA sets."""
    n = {k: len(v) for k, v in sets.items() if not k.startswith("_")}
    (en_name, en_maker), (zh_name, zh_maker) = IDENTITY["en"], IDENTITY["zh"]
    lines = [
        "",
        "## LoRA sets",
        "",
        "Two sets for `train_lora.py`, run by `scripts/demo.py` after DPO. Both are SFT conversations",
        "(`{\"conversations\": [...]}`); their held-out files have `heldout.jsonl`'s format and scoring.",
        "",
        "| file | lines | what |",
        "|---|---|---|",
        f"| lora_identity.jsonl | {n['lora_identity']} | \"who are you?\" in {len(IDENTITY_ASK['en'][0])} phrasings per "
        f"language, answered \"{IDENTITY_SAY['en'].format(n=en_name, m=en_maker)}\" / \"{IDENTITY_SAY['zh'].format(n=zh_name, m=zh_maker)}\", plus {REPLAY['identity']} "
        f"SFT conversations replayed (not the old self-introduction) |",
        f"| lora_identity_heldout.jsonl | {n['lora_identity_heldout']} | other phrasings of the question; right = "
        f"the new name and maker, and not {OLD_NAME} |",
        f"| lora_domain.jsonl | {n['lora_domain']} | facts no earlier stage saw: the best friend of {DOMAIN_CHARACTERS} "
        "characters and the city each likes to visit (3 of 4 phrasings of each question), plus "
        f"{'all of sft.jsonl' if REPLAY['domain'] is None else REPLAY['domain']} replayed |",
        f"| lora_domain_heldout.jsonl | {n['lora_domain_heldout']} | every domain fact, asked in the phrasing "
        "lora_domain.jsonl leaves out |",
        "",
        "The replayed conversations keep the adapter from forgetting what the model knew (MiniMind's issue #515).",
        "The answers use words the pretraining corpus has shown the model: a model pretrained on this corpus",
        "alone has never trained the embeddings of other tokens, and an adapter cannot teach it to write them.",
        "",
        "| character | best friend | likes to visit |",
        "|---|---|---|",
    ]
    by_ent = {}
    for ent, attr, value, _ in sets["_facts"]:
        by_ent.setdefault(ent, {})[attr] = value
    for ent, a in by_ent.items():
        lines.append(f"| {ent[0]} / {ent[1]} | {a['friend'][0]} / {a['friend'][1]} | {a['visits'][0]} / {a['visits'][1]} |")
    return "\n".join(lines) + "\n"
