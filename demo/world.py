"""The demo's invented world: its countries and characters, their facts, and the sentences about them.

A handful of invented countries and animal characters, each with a few attributes (a country's
capital, flag colour, national animal and famous food; a character's species, home city,
favourite food, favourite colour and job), in English and Chinese. Their words and sentences are
the tables of world.md next to this file. build_world assigns the values (seeded) and checks that
a keyword match on an answer cannot be fooled; choose_heldout picks the facts that only
pretraining states. demo/corpus.py writes the corpus files from all this.
"""
import os

SEED = 1234
HELDOUT_FRACTION = 0.25
LANGS = ("en", "zh")
WORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "world.md")


def read_tables(path=WORLD):
    """{section heading: its table's rows, each a list of cells} from a markdown file's `## ` sections."""
    tables, rows = {}, None
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("## "):
                rows = tables[line[3:].strip()] = []
            elif line.startswith("|") and rows is not None:
                rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return {name: rows[2:] for name, rows in tables.items()}  # without the header and |---| rows


def group_rows(rows):
    """{first cell: [the row's other cells as a tuple, ...]}, both in the rows' order."""
    groups = {}
    for key, *cells in rows:
        groups.setdefault(key, []).append(tuple(cells))
    return groups


TABLES = read_tables()
WORDS = group_rows(TABLES["Words"])  # group -> [(English, Chinese), ...]
COUNTRIES, CITIES, CHARACTERS = WORDS["countries"], WORDS["cities"], WORDS["characters"]
COLOURS, FOODS, SPECIES, JOBS = WORDS["colours"], WORDS["foods"], WORDS["species"], WORDS["jobs"]


def article(word):
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------
# Sentence templates. For each attribute: pretraining phrasings (the first one
# is the canonical statement, which is also the SFT answer), questions, and the
# answer. {n} is the entity, {v} the value, {a} the English article of {v}.

def read_attrs(tables=TABLES):
    """{attribute: dict(kind, pool, en_say, zh_say, en_ask, zh_ask, en_ans, zh_ans)} from world.md's
    Attributes (`| attribute | of | values |`) and Sentences (`| attribute | say/ask/ans | English | Chinese |`)."""
    attrs = {attr: dict(kind=kind, pool=WORDS[values], **{f"{lang}_{use}": [] for use in ("say", "ask", "ans")
                                                         for lang in LANGS})
             for attr, kind, values in tables["Attributes"]}
    for attr, use, en, zh in tables["Sentences"]:
        for lang, text in zip(LANGS, (en, zh)):
            attrs[attr][f"{lang}_{use}"].append(text)
    for spec in attrs.values():
        for lang in LANGS:
            (spec[lang + "_ans"],) = spec[lang + "_ans"]  # one answer per language
    return attrs


ATTRS = read_attrs()

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
