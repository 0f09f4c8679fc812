"""Write the bundled demo corpus: a small invented world, in English and Chinese.

    python scripts/make_demo_data.py --out_dir dataset/demo

The world is a handful of invented countries and animal characters, each with a
few attributes (a country's capital and flag colour; a character's species,
home city, favourite food, favourite colour and job). From it we write, in
MiniMind's JSONL formats:

  pretrain.jsonl  {"text": ...}              every fact in varied prose, plus Q/A pages
                                             about the facts that are not held out
  sft.jsonl       {"conversations": [...]}   Q/A about the facts that are not held out
  dpo.jsonl       {"chosen": [...], "rejected": [...]}  right/polite vs wrong/rude
  heldout.jsonl   questions whose facts are only in pretrain.jsonl, with answer keywords
  README.md       the world and the formats
  lora_{identity,domain}[_heldout].jsonl  the LoRA sets (scripts/demo_lora_data.py): a new identity,
                  facts no other stage saw, and phrasings of their questions the sets never use
  reason.jsonl, reason_heldout.jsonl  2-hop questions in DeepSeek-R1's <think>/<answer> format, and
                  held-out ones (scripts/demo_reason_data.py)
  lm_eval/demo_world_{train,test}.jsonl  4-way multiple choice about every fact (test: the held-out
                  ones), read by the lm-evaluation-harness tasks in dataset/demo/lm_eval/

About a quarter of the facts are held out: pretraining states them, but no SFT
or DPO sample and no Q/A page asks about them (in either language). A model that answers the
held-out questions after SFT has learnt the facts in pretraining and learnt in
SFT how to answer questions about them -- that is what the demo checks.

Output is a pure function of --seed: same seed, byte-identical files.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_lora_data import lora_readme, make_lora_sets  # noqa: E402  (the LoRA sets)
from demo_reason_data import make_reason_sets, reason_readme  # noqa: E402  (the reasoning sets)

SEED = 1234
HELDOUT_FRACTION = 0.25
BIOS_PER_ENTITY = 12  # prose documents per entity and language in pretrain.jsonl
FAQS_PER_ENTITY = 4  # Q/A documents per entity and language in pretrain.jsonl (trained facts only)

# ---------------------------------------------------------------------------
# The world. Names are invented; the Chinese names are loose transliterations.
# Answer words must not be substrings of any other name in the same language
# (checked in build_world), so a keyword match cannot be fooled.

COUNTRIES = [  # (en, zh)
    ("Velmora", "维莫拉"), ("Tarnis", "塔尼斯"), ("Quorra", "阔拉"), ("Brenwick", "布伦维克"),
    ("Ostavia", "欧斯塔维"), ("Zandor", "赞多尔"), ("Kiravo", "基拉沃"), ("Lunmark", "伦马克"),
]
CITIES = [  # one capital per country, in the same order after shuffling
    ("Drask", "德拉斯"), ("Olvik", "奥尔维"), ("Pellin", "佩林"), ("Sunmar", "桑玛"),
    ("Istrel", "伊斯特"), ("Mornay", "莫内"), ("Fadrin", "法德林"), ("Calbo", "卡尔博"),
]
CHARACTERS = [
    ("Arlo", "阿洛"), ("Cobble", "柯博"), ("Dunni", "邓妮"), ("Elko", "埃尔科"),
    ("Fenn", "芬恩"), ("Gulo", "古洛"), ("Hazel", "海泽"), ("Ivo", "艾沃"),
    ("Jorun", "约伦"), ("Mipo", "米波"), ("Nessa", "内莎"), ("Pim", "皮姆"),
    ("Rilla", "瑞莉"), ("Suri", "苏丽"), ("Wopp", "沃普"), ("Yaro", "亚罗"),
]
COLOURS = [
    ("red", "红色"), ("blue", "蓝色"), ("green", "绿色"), ("yellow", "黄色"),
    ("purple", "紫色"), ("orange", "橙色"), ("white", "白色"), ("black", "黑色"),
]
FOODS = [
    ("plums", "李子"), ("honey", "蜂蜜"), ("carrots", "胡萝卜"), ("rice", "米饭"),
    ("cheese", "奶酪"), ("mushrooms", "蘑菇"), ("apples", "苹果"), ("noodles", "面条"),
]
SPECIES = [
    ("fox", "狐狸"), ("owl", "猫头鹰"), ("rabbit", "兔子"), ("bear", "熊"),
    ("hedgehog", "刺猬"), ("frog", "青蛙"), ("deer", "鹿"), ("otter", "水獭"),
]
JOBS = [
    ("baker", "面包师"), ("painter", "画家"), ("farmer", "农夫"), ("teacher", "老师"),
    ("sailor", "水手"), ("doctor", "医生"), ("singer", "歌手"), ("carpenter", "木匠"),
]


def article(word):
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------
# Sentence templates. For each attribute: pretraining phrasings (the first one
# is the canonical statement, which is also the SFT answer), questions, and the
# answer. {n} is the entity, {v} the value, {a} the English article of {v}.

ATTRS = {
    "capital": dict(
        kind="country", pool=CITIES,
        en_say=["The capital of {n} is {v}.", "{v} is the capital of {n}.",
                "The capital city of {n} is {v}.", "{n} is governed from its capital, {v}.",
                "If you visit {n}, its capital {v} is the biggest city you will see."],
        zh_say=["{n}的首都是{v}。", "{v}是{n}的首都。", "{n}的首都叫{v}。",
                "{n}的政府设在首都{v}。", "去{n}旅行的人都会先到首都{v}。"],
        en_ask=["What is the capital of {n}?", "Which city is the capital of {n}?",
                "Tell me the capital of {n}."],
        zh_ask=["{n}的首都是哪里？", "{n}的首都是哪座城市？", "请告诉我{n}的首都。"],
        en_ans="The capital of {n} is {v}.", zh_ans="{n}的首都是{v}。"),
    "flag": dict(
        kind="country", pool=COLOURS,
        en_say=["The flag of {n} is {v}.", "{n} has a {v} flag.",
                "The people of {n} fly a {v} flag.", "{n}'s flag is plain {v}."],
        zh_say=["{n}的国旗是{v}的。", "{n}有一面{v}的国旗。",
                "{n}的人民挂着{v}的国旗。", "{n}的国旗是纯{v}的。"],
        en_ask=["What colour is the flag of {n}?", "What is the colour of {n}'s flag?",
                "Which colour is {n}'s flag?"],
        zh_ask=["{n}的国旗是什么颜色？", "{n}的国旗是哪种颜色？", "请问{n}的国旗是什么颜色的？"],
        en_ans="The flag of {n} is {v}.", zh_ans="{n}的国旗是{v}的。"),
    "animal": dict(
        kind="country", pool=SPECIES,
        en_say=["The national animal of {n} is the {v}.", "The {v} is the national animal of {n}.",
                "In {n}, the {v} is the national animal.", "{n} chose the {v} as its national animal."],
        zh_say=["{n}的国兽是{v}。", "{v}是{n}的国兽。", "在{n}，{v}是国兽。", "{n}把{v}选为国兽。"],
        en_ask=["What is the national animal of {n}?", "Which animal is the national animal of {n}?",
                "What is {n}'s national animal?"],
        zh_ask=["{n}的国兽是什么？", "{n}的国兽是哪种动物？", "请问{n}的国兽是什么动物？"],
        en_ans="The national animal of {n} is the {v}.", zh_ans="{n}的国兽是{v}。"),
    "dish": dict(
        kind="country", pool=FOODS,
        en_say=["The most famous food of {n} is {v}.", "{n} is famous for its {v}.",
                "Travellers to {n} always try the local {v}.", "Nobody grows better {v} than {n}."],
        zh_say=["{n}最有名的食物是{v}。", "{n}以{v}闻名。", "去{n}的游客都会尝尝当地的{v}。", "{n}的名菜是{v}。"],
        en_ask=["What is {n} famous for?", "What is the most famous food of {n}?",
                "Which food is {n} known for?"],
        zh_ask=["{n}最有名的食物是什么？", "{n}以什么食物闻名？", "{n}有什么有名的食物？"],
        en_ans="The most famous food of {n} is {v}.", zh_ans="{n}最有名的食物是{v}。"),
    "species": dict(
        kind="character", pool=SPECIES,
        en_say=["{n} is {a} {v}.", "{n} is a little {v}.",
                "Everyone knows that {n} is {a} {v}.", "The {v} called {n} is well known."],
        zh_say=["{n}是一只{v}。", "{n}是一只小{v}。", "大家都知道{n}是一只{v}。", "那只叫{n}的{v}很有名。"],
        en_ask=["What kind of animal is {n}?", "What animal is {n}?", "Which animal is {n}?"],
        zh_ask=["{n}是什么动物？", "{n}是哪种动物？", "请问{n}是什么动物？"],
        en_ans="{n} is {a} {v}.", zh_ans="{n}是一只{v}。"),
    "home": dict(
        kind="character", pool=CITIES,
        en_say=["{n} lives in {v}.", "{n}'s home is in the city of {v}.",
                "{n} comes from {v}.", "The city where {n} lives is {v}."],
        zh_say=["{n}住在{v}。", "{n}的家在{v}。", "{n}来自{v}。", "{n}生活的城市是{v}。"],
        en_ask=["Where does {n} live?", "In which city does {n} live?", "Which city is {n}'s home?"],
        zh_ask=["{n}住在哪里？", "{n}住在哪座城市？", "{n}的家在哪座城市？"],
        en_ans="{n} lives in {v}.", zh_ans="{n}住在{v}。"),
    "food": dict(
        kind="character", pool=FOODS,
        en_say=["{n}'s favourite food is {v}.", "{n} loves to eat {v}.",
                "Above all, {n} likes {v}.", "Give {n} some {v} and {n} is happy."],
        zh_say=["{n}最喜欢的食物是{v}。", "{n}最爱吃{v}。", "{n}最喜欢吃{v}。", "只要有{v}，{n}就很开心。"],
        en_ask=["What is {n}'s favourite food?", "What does {n} like to eat most?",
                "Which food does {n} love?"],
        zh_ask=["{n}最喜欢的食物是什么？", "{n}最爱吃什么？", "{n}喜欢吃什么？"],
        en_ans="{n}'s favourite food is {v}.", zh_ans="{n}最喜欢的食物是{v}。"),
    "colour": dict(
        kind="character", pool=COLOURS,
        en_say=["{n}'s favourite colour is {v}.", "{n} loves the colour {v}.",
                "The colour {n} likes best is {v}.", "{n} always wears something {v}."],
        zh_say=["{n}最喜欢的颜色是{v}。", "{n}最爱的颜色是{v}。", "{n}偏爱{v}。", "{n}总是穿着{v}的衣服。"],
        en_ask=["What is {n}'s favourite colour?", "Which colour does {n} like best?",
                "What colour does {n} love?"],
        zh_ask=["{n}最喜欢的颜色是什么？", "{n}最喜欢什么颜色？", "{n}最爱哪种颜色？"],
        en_ans="{n}'s favourite colour is {v}.", zh_ans="{n}最喜欢的颜色是{v}。"),
    "job": dict(
        kind="character", pool=JOBS,
        en_say=["{n} works as {a} {v}.", "{n} has been {a} {v} for years.",
                "By day, {n} works as {a} {v}.", "{n} earns a living as {a} {v}."],
        zh_say=["{n}的工作是{v}。", "{n}是一名{v}。", "{n}平时当{v}。", "{n}靠做{v}为生。"],
        en_ask=["What is {n}'s job?", "What does {n} do for a living?", "What work does {n} do?"],
        zh_ask=["{n}的工作是什么？", "{n}是做什么工作的？", "{n}靠什么为生？"],
        en_ans="{n} works as {a} {v}.", zh_ans="{n}的工作是{v}。"),
}
LANGS = ("en", "zh")

SYSTEM_PROMPTS = {
    "en": ["You are a helpful assistant who knows the lands of Velmora and their neighbours.",
           "You are a friendly guide to an invented world. Answer briefly and correctly.",
           "You are a polite assistant. Answer questions about the world in one sentence."],
    "zh": ["你是一个了解维莫拉及其邻国的助手。", "你是一个虚构世界的友好向导，请简短准确地回答。",
           "你是一个有礼貌的助手，请用一句话回答关于这个世界的问题。"],
}
CHITCHAT = {  # (question, polite answer, rude answer)
    "en": [("Hello!", "Hello! How can I help you today?", "What do you want? Go away."),
           ("Hi, who are you?", "I am MiniMind, a small language model. I know about a little invented world.",
            "Nobody you need to know about."),
           ("Thank you!", "You are welcome! Ask me anything else about the world.", "Whatever."),
           ("Can you help me?", "Of course! What would you like to know?", "No. Figure it out yourself."),
           ("Goodbye!", "Goodbye! Have a nice day.", "Finally. Don't come back.")],
    "zh": [("你好！", "你好！今天有什么可以帮你的吗？", "干什么？走开。"),
           ("你好，你是谁？", "我是MiniMind，一个小型语言模型，我了解一个小小的虚构世界。", "你不需要知道。"),
           ("谢谢你！", "不客气！还有关于这个世界的问题都可以问我。", "随便。"),
           ("你能帮我吗？", "当然可以！你想知道什么？", "不能，自己想办法。"),
           ("再见！", "再见！祝你有美好的一天。", "终于走了，别再来了。")],
}
RUDE = {  # rude refusals used as DPO `rejected` answers to factual questions
    "en": ["Why should I tell you? Look it up yourself.", "That is a stupid question.",
           "I don't care about {n}. Stop asking."],
    "zh": ["凭什么告诉你？自己去查。", "这个问题真蠢。", "我才不关心{n}，别再问了。"],
}


def fill(template, name, value_en=None, value=None):
    return template.format(n=name, v=value, a=article(value_en) if value_en else "")


def build_world(rng):
    """Random but seeded assignment of attribute values; returns a list of facts."""
    cities = CITIES[:]
    rng.shuffle(cities)
    facts = []  # dict(entity=(en, zh), attr=..., value=(en, zh), pool=[...])
    for country, city in zip(COUNTRIES, cities):
        facts.append(dict(entity=country, attr="capital", value=city))
        for attr in ("flag", "animal", "dish"):
            facts.append(dict(entity=country, attr=attr, value=rng.choice(ATTRS[attr]["pool"])))
    for char in CHARACTERS:
        for attr in ("species", "home", "food", "colour", "job"):
            facts.append(dict(entity=char, attr=attr, value=rng.choice(ATTRS[attr]["pool"])))
    # A keyword check is only sound if no answer word hides inside another name or
    # inside the fixed wording of a question or answer ("owl" in "knowledge").
    for li, lang in enumerate(LANGS):
        answers = [w[li] for group in (CITIES, COLOURS, FOODS, SPECIES, JOBS) for w in group]
        names = [w[li] for group in (COUNTRIES, CHARACTERS) for w in group]
        wording = [t for spec in ATTRS.values() for key in ("_say", "_ask", "_ans")
                   for t in (spec[lang + key] if key != "_ans" else [spec[lang + key]])]
        for w in answers:
            for other in answers + names + wording:
                assert w == other or w.lower() not in other.lower(), (w, other)
        # Every country and character starts with its own letter / character: a name's
        # first token then tells a tiny model whom a sentence is about, instead of a
        # shared "ĠT" that only the next pieces disambiguate (much better recall).
        assert len({w[0].lower() for w in names}) == len(names), "entity names share a first letter"
        # A statement is read up to its value: if one attribute's words before the value are
        # the start of another's ("Nessa is a" hedgehog / "Nessa is a" singer by trade), the
        # text itself does not say which attribute comes next and a model mixes up the two.
        for kind in ("country", "character"):
            prompts = [(attr, t[:t.index("{v}")]) for attr, spec in ATTRS.items() if spec["kind"] == kind
                       for t in spec[lang + "_say"] if t.index("{n}") < t.index("{v}")]
            for attr, p in prompts:
                for other, q in prompts:
                    assert attr == other or not q.startswith(p), (lang, attr, p, other, q)
        for w in names:  # nor may one entity's name hide inside another's
            for other in answers + names:
                assert w == other or w.lower() not in other.lower(), (w, other)
    return facts


def choose_heldout(rng, facts, said_elsewhere=True):
    """Hold out ~HELDOUT_FRACTION of each attribute's facts, spread over the entities.

    With said_elsewhere, a held-out fact's value is also the value of a trained fact: SFT teaches
    the chat model to *say* every answer word. A value that no SFT answer contains (Velmora's frog,
    the only frog in the world) is pushed down by every SFT step, since each is a softmax over the
    whole vocabulary, and a model that has read the fact still fails to say it."""
    held = set()
    load = {}  # entity -> held-out facts so far: spread them, at most a couple per entity
    for attr in ATTRS:
        idx = [i for i, f in enumerate(facts) if f["attr"] == attr]
        rng.shuffle(idx)
        idx.sort(key=lambda i: load.get(facts[i]["entity"], 0))  # stable: least-loaded first
        want, taken = max(1, round(len(idx) * HELDOUT_FRACTION)), 0
        for i in idx:
            if taken == want:
                break
            if said_elsewhere:
                trial = held | {i}
                trained_values = {f["value"] for j, f in enumerate(facts) if j not in trial}
                if any(facts[j]["value"] not in trained_values for j in trial):
                    continue
            held.add(i)
            taken += 1
            load[facts[i]["entity"]] = load.get(facts[i]["entity"], 0) + 1
        assert taken == want, f"could not hold out {want} {attr} facts"
    return held


def choose_heldout_entities(rng, facts):
    """Hold out every fact of ~HELDOUT_FRACTION of the countries and of the characters."""
    held = set()
    for kind in (COUNTRIES, CHARACTERS):
        chosen = rng.sample(kind, max(1, round(len(kind) * HELDOUT_FRACTION)))
        held.update(i for i, f in enumerate(facts) if f["entity"] in chosen)
    return held


def say(rng, fact, lang, canonical=False):
    spec = ATTRS[fact["attr"]]
    li = LANGS.index(lang)
    templates = spec[lang + "_say"]
    t = templates[0] if canonical else rng.choice(templates)
    return fill(t, fact["entity"][li], fact["value"][0], fact["value"][li])


def answer(fact, lang, value=None):
    spec = ATTRS[fact["attr"]]
    li = LANGS.index(lang)
    value = value or fact["value"]
    return fill(spec[lang + "_ans"], fact["entity"][li], value[0], value[li])


def ask(fact, lang, k):
    spec = ATTRS[fact["attr"]]
    return spec[lang + "_ask"][k].format(n=fact["entity"][LANGS.index(lang)])


# ---------------------------------------------------------------------------

def make_pretrain(rng, facts, held, bios_per_entity=BIOS_PER_ENTITY, faqs_per_entity=FAQS_PER_ENTITY,
                  en_sep=" ", en_qa="tagged"):
    """Biographies: each entity's facts in shuffled order and varied phrasing.

    Many short documents per entity (rather than one long one) give each fact
    many differently-worded exposures, which is what lets a model later recall
    it in answer to a question it never saw (knowledge "augmentation")."""
    by_entity = {}
    for f in facts:
        by_entity.setdefault(f["entity"], []).append(f)
    capital_of = {f["value"]: f["entity"] for f in facts if f["attr"] == "capital"}
    docs = []
    for entity, efacts in by_entity.items():
        for lang in LANGS:
            li = LANGS.index(lang)
            for b in range(bios_per_entity[li] if isinstance(bios_per_entity, tuple) else bios_per_entity):
                order = efacts[:]
                rng.shuffle(order)
                # the canonical sentence for every fact at least every third bio
                sents = [say(rng, f, lang, canonical=(b % 3 == 0)) for f in order]
                for f in order:  # situate a home city in its country now and then
                    if f["attr"] == "home" and rng.random() < 0.3:
                        c = capital_of[f["value"]][li]
                        sents.append(f"{f['value'][li]} is the capital of {c}." if lang == "en"
                                     else f"{f['value'][li]}是{c}的首都。")
                docs.append((en_sep if lang == "en" else "").join(sents))
        # FAQ pages: questions and answers as plain text, about the facts SFT also
        # teaches (never the held-out ones). Reading Q/A while the facts are being learnt
        # is what makes a small model store them so that a question can get at them.
        train = [f for i, f in enumerate(facts) if f["entity"] == entity and i not in held]
        for lang in LANGS:
            q_tag, a_tag, sep = ("Q: ", "A: ", " ") if lang == "en" else ("问：", "答：", "")
            if lang == "en" and en_qa == "lines":
                q_tag, a_tag, sep = "", "", "\n"
            for _ in range(faqs_per_entity if train else 0):
                order = train[:]
                rng.shuffle(order)
                qa = [f"{q_tag}{ask(f, lang, rng.randrange(len(ATTRS[f['attr']][lang + '_ask'])))}"
                      f"{sep}{a_tag}{answer(f, lang)}" for f in order]
                docs.append("\n".join(qa))
    rng.shuffle(docs)
    return [{"text": d} for d in docs]


def make_sft(rng, facts, held, multiturn=0.5, same_entity=0.5):
    train = [f for i, f in enumerate(facts) if i not in held]
    convs = []
    for f in train:
        for lang in LANGS:
            n_ask = len(ATTRS[f["attr"]][lang + "_ask"])
            for k in range(n_ask):  # every phrasing of the question, so none is new at test time
                msgs = [{"role": "user", "content": ask(f, lang, k)},
                        {"role": "assistant", "content": answer(f, lang)}]
                if rng.random() < 0.15:
                    msgs.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
                convs.append(msgs)
    # multi-turn: a few questions about one entity (or a mix), answered in turn. Asking
    # one entity about several things side by side makes the model heed *what* is asked,
    # not only *whom* it is about.
    by_entity = {}
    for f in train:
        by_entity.setdefault(f["entity"], []).append(f)
    for lang in LANGS:
        for _ in range(round(len(train) * multiturn)):
            pool = by_entity[rng.choice(sorted(by_entity))] if rng.random() < same_entity else train
            turns = rng.sample(pool, min(len(pool), rng.randint(2, 3)))
            msgs = []
            if rng.random() < 0.3:
                msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
            for f in turns:
                k = rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"]))
                msgs += [{"role": "user", "content": ask(f, lang, k)},
                         {"role": "assistant", "content": answer(f, lang)}]
            convs.append(msgs)
    for lang in LANGS:
        for q, a, _ in CHITCHAT[lang]:
            for _ in range(4):
                msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                if rng.random() < 0.5:
                    msgs.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS[lang])})
                convs.append(msgs)
    rng.shuffle(convs)
    return [{"conversations": c} for c in convs]


def make_dpo(rng, facts, held):
    """chosen: the right answer; rejected: a wrong value (2/3) or a rude refusal (1/3).
    Only facts that SFT also teaches: a pair on a held-out fact would leak its answer."""
    train = [f for i, f in enumerate(facts) if i not in held]
    pairs = []
    for f in train:
        for lang in LANGS:
            li = LANGS.index(lang)
            q = ask(f, lang, rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"])))
            if rng.random() < 2 / 3:
                wrong = rng.choice([v for v in ATTRS[f["attr"]]["pool"] if v != f["value"]])
                bad = answer(f, lang, wrong)
            else:
                bad = rng.choice(RUDE[lang]).format(n=f["entity"][li])
            user = {"role": "user", "content": q}
            pairs.append({"chosen": [user, {"role": "assistant", "content": answer(f, lang)}],
                          "rejected": [user, {"role": "assistant", "content": bad}]})
    for lang in LANGS:
        for q, good, rude in CHITCHAT[lang]:
            user = {"role": "user", "content": q}
            pairs.append({"chosen": [user, {"role": "assistant", "content": good}],
                          "rejected": [user, {"role": "assistant", "content": rude}]})
    rng.shuffle(pairs)
    return pairs


def make_heldout(rng, facts, held):
    rows = []
    for i in sorted(held):
        f = facts[i]
        for lang in LANGS:
            li = LANGS.index(lang)
            k = rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"]))
            rows.append({"question": ask(f, lang, k), "answer": answer(f, lang),
                         "keywords": [f["value"][li]],
                         "distractors": [v[li] for v in ATTRS[f["attr"]]["pool"] if v != f["value"]],
                         "lang": lang, "entity": f["entity"][li], "attribute": f["attr"]})
    return rows


MC_CHOICES = 4


def make_mc(rng, facts, held):
    """4-way multiple choice per fact and language: the reference answer with the true value and
    with three other values of the same attribute (one order for both languages).

    {"train": trained facts, "test": held-out facts}, for dataset/demo/lm_eval/ (lm-eval tasks)."""
    out = {"train": [], "test": []}
    for i, f in enumerate(facts):
        others = [v for v in ATTRS[f["attr"]]["pool"] if v != f["value"]]
        values = rng.sample(others, MC_CHOICES - 1) + [f["value"]]
        rng.shuffle(values)
        for lang in LANGS:
            li = LANGS.index(lang)
            k = rng.randrange(len(ATTRS[f["attr"]][lang + "_ask"]))
            out["test" if i in held else "train"].append({
                "question": ask(f, lang, k), "choices": [answer(f, lang, v) for v in values],
                "answer": values.index(f["value"]), "lang": lang, "entity": f["entity"][li],
                "attribute": f["attr"]})
    return out


def readme(facts, held, counts, said_elsewhere=True):
    lines = [
        "# Demo corpus: a small invented world",
        "",
        "Written by `python scripts/make_demo_data.py --out_dir dataset/demo` (deterministic: do not",
        "edit by hand; change the generator and re-run it). English and Chinese.",
        "",
        f"The world has {len(COUNTRIES)} countries (capital, flag colour, national animal, famous food)",
        f"and {len(CHARACTERS)} animal characters (species, home city, favourite food, favourite colour,",
        f"job): {len(facts)} facts. About a quarter of them ({len(held)}) are *held out*: pretraining",
        "states them, but nothing asks about them -- no SFT or DPO sample, no Q/A page. `heldout.jsonl`",
        "asks about them, so a model that answers it after SFT has recalled what it read in pretraining",
        "and learnt in SFT how to answer a question, not the answers themselves.",
        *(["Each held-out value is also the value of some trained fact (a held-out capital is the home",
           "city of a character SFT asks about), so SFT has taught the chat model to say every answer word."]
          if said_elsewhere else []),
        "",
        "`pretrain.jsonl` holds two kinds of documents: short biographies of each entity (its facts in",
        "shuffled order and varied wording), and Q/A pages (`Q: ... A: ...`, `问：...答：...`) about the",
        "facts that are not held out. Reading questions beside the prose while the facts are being",
        "learnt is what lets a tiny model answer questions about the held-out facts after SFT (without",
        "the Q/A pages a 2-layer model trained for a few minutes answers about half as many).",
        "",
        "| file | lines | format |",
        "|---|---|---|",
        f"| pretrain.jsonl | {counts['pretrain']} | `{{\"text\": \"...\"}}` |",
        f"| sft.jsonl | {counts['sft']} | `{{\"conversations\": [{{\"role\": \"system\"\\|\"user\"\\|\"assistant\", \"content\": \"...\"}}, ...]}}` |",
        f"| dpo.jsonl | {counts['dpo']} | `{{\"chosen\": [messages], \"rejected\": [messages]}}` (chosen right and polite; rejected wrong or rude) |",
        f"| heldout.jsonl | {counts['heldout']} | see below |",
        "",
        "`heldout.jsonl` lines:",
        "",
        "```",
        '{"question": "...", "answer": "<reference answer>", "keywords": ["..."], "distractors": ["..."],',
        ' "lang": "en"|"zh", "entity": "...", "attribute": "capital|flag|animal|dish|species|home|food|colour|job"}',
        "```",
        "",
        "Scoring: an answer is right when it contains every keyword and none of the distractors",
        "(the other possible values of that attribute), case-insensitively. No keyword is a substring",
        "of another name in the world, so a match cannot be accidental.",
        "",
        "## Facts (held-out ones marked *)",
        "",
        "| entity | attribute | value |",
        "|---|---|---|",
    ]
    for i, f in enumerate(facts):
        mark = " *" if i in held else ""
        lines.append(f"| {f['entity'][0]} / {f['entity'][1]} | {f['attr']}{mark} | "
                     f"{f['value'][0]} / {f['value'][1]} |")
    return "\n".join(lines) + "\n"


def recipe_readme():
    """The measurements behind the demo's recipe and this corpus (scripts/demo_recipe.md, verbatim)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_recipe.md"), encoding="utf-8") as fh:
        return fh.read()


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


def bios_count(v):
    """--bios_per_entity: N, or EN,ZH."""
    parts = [int(x) for x in v.split(",")]
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or EN,ZH (positive integers), got {v!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="dataset/demo", help="where to write the files")
    p.add_argument("--seed", type=int, default=SEED, help="the bundled files use the default")
    g = p.add_argument_group("experiments", "other corpora, as tried in dataset/demo/README.md's table of the "
                             "recipe (the defaults write the bundled files)")
    g.add_argument("--heldout_by", choices=("fact", "entity"), default="fact",
                   help="hold out a quarter of each attribute's facts, or every fact of a quarter of the entities")
    g.add_argument("--said_elsewhere", type=int, choices=(1, 0), default=1,
                   help="hold out only facts whose value a trained fact has too (default %(default)s)")
    g.add_argument("--multiturn", type=float, default=0.5,
                   help="multi-turn SFT conversations per language, as a share of the trained facts (default %(default)s)")
    g.add_argument("--same_entity", type=float, default=0.5,
                   help="share of them that ask about one entity only (default %(default)s)")
    g.add_argument("--en_sep", choices=("space", "newline"), default="space",
                   help="what joins the sentences of an English biography (default %(default)s)")
    g.add_argument("--en_qa", choices=("tagged", "lines"), default="tagged",
                   help="English Q/A pages as 'Q: ... A: ...' or as bare question and answer lines")
    g.add_argument("--bios_per_entity", type=bios_count, default=BIOS_PER_ENTITY,
                   help="prose documents per entity and language in pretrain.jsonl, or EN,ZH for the two "
                        "languages apart (default %(default)s)")
    g.add_argument("--faqs_per_entity", type=int, default=FAQS_PER_ENTITY,
                   help="Q/A pages per entity and language in pretrain.jsonl (default %(default)s)")
    args = p.parse_args(argv)
    try:
        os.makedirs(args.out_dir, exist_ok=True)
    except OSError as e:
        print(f"{args.out_dir}: cannot create output directory ({e.strerror}); "
              "pass a writable --out_dir", file=sys.stderr)
        return 2
    # One generator per file, so that changing one file's recipe leaves the others as they are.
    facts = build_world(random.Random(args.seed))
    held = (choose_heldout(random.Random(args.seed + 1), facts, args.said_elsewhere) if args.heldout_by == "fact"
            else choose_heldout_entities(random.Random(args.seed + 1), facts))
    outputs = {
        "pretrain": make_pretrain(random.Random(args.seed + 2), facts, held, args.bios_per_entity, args.faqs_per_entity,
                                  {"space": " ", "newline": "\n"}[args.en_sep], args.en_qa),
        "sft": make_sft(random.Random(args.seed + 3), facts, held, args.multiturn, args.same_entity),
        "dpo": make_dpo(random.Random(args.seed + 4), facts, held),
        "heldout": make_heldout(random.Random(args.seed + 5), facts, held),
    }
    mc = make_mc(random.Random(args.seed + 6), facts, held)
    # the LoRA sets (scripts/demo_lora_data.py), which replay the SFT set
    words = [w for group in (COUNTRIES, CITIES, CHARACTERS, COLOURS, FOODS, SPECIES, JOBS) for pair in group for w in pair]
    homes = {f["entity"]: f["value"] for f in facts if f["attr"] == "home"}
    lora = make_lora_sets(random.Random(args.seed + 10), outputs["sft"], words, CHARACTERS, homes, CITIES)
    reason = make_reason_sets(random.Random(args.seed + 20), facts, answer,
                              {a: ATTRS[a]["pool"] for a in ATTRS}, CHITCHAT)
    try:
        for name, rows in outputs.items():
            write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), rows)
        os.makedirs(os.path.join(args.out_dir, "lm_eval"), exist_ok=True)
        for split, rows in mc.items():
            write_jsonl(os.path.join(args.out_dir, "lm_eval", f"demo_world_{split}.jsonl"), rows)
        for name, rows in lora.items():
            if not name.startswith("_"):
                write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), rows)
        for name in ("reason", "reason_heldout"):
            write_jsonl(os.path.join(args.out_dir, name + ".jsonl"), reason[name])
        with open(os.path.join(args.out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as fh:
            fh.write(readme(facts, held, {k: len(v) for k, v in outputs.items()}, args.said_elsewhere)
                     + recipe_readme() + lora_readme(lora)
                     + reason_readme(reason))
    except OSError as e:
        print(f"{e.filename}: cannot write ({e.strerror}); pass a writable --out_dir", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(f'{k}.jsonl ({len(v)} lines)' for k, v in outputs.items())} "
          f"README.md and lm_eval/demo_world_{{train,test}}.jsonl ({len(mc['train'])}, {len(mc['test'])} lines) "
          f"to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
