"""llmlab.apps.topics: themes found in synthetic tickets, c-TF-IDF against BERTopic, files, errors."""

import csv
import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp

from llmlab.apps.topics import Topic, _clean_name, cjk_bigrams, class_tfidf, keywords, representatives, topics
from llmlab.cli import main
from llmlab.errors import LlmlabError

# Four clearly distinct themes, 24 tickets each, plus two texts that belong to none.
THEMES = {
    "password": (["I forgot my password", "my password reset link does not work",
                  "the login page rejects my password", "I cannot log in since the password change"],
                 ["and I am locked out of my account.", "please help me log in again.",
                  "what should I do about the password?", "how do I reset the password?",
                  "the password reset email never comes.", "my login keeps failing."]),
    "refund": (["I returned the shoes", "the jacket I sent back was damaged",
                "I cancelled my order", "the blender arrived broken"],
               ["and I still have no refund.", "when will I get my refund?",
                "please refund the money to my card.", "I want a full refund.",
                "how long does a refund take?", "the refund has not arrived."]),
    "delivery": (["My parcel is late", "the package has not been delivered",
                  "the courier lost my parcel", "tracking shows no delivery update"],
                 ["for two weeks now.", "where is my delivery?", "the delivery date has passed.",
                  "can you check the parcel tracking?", "the courier never came.", "is shipping delayed?"]),
    "invoice": (["My invoice shows a double charge", "I was billed twice on the invoice",
                 "the invoice amount is wrong", "there is an unknown charge on my invoice"],
                ["for this month.", "please correct the invoice.", "why was my card charged twice?",
                 "I need a corrected invoice.", "the billing total is too high.", "can billing explain the charge?"]),
}
OFF_TOPIC = ["Quantum chromodynamics describes the strong interaction between quarks and gluons.",
             "The recipe needs three ripe tomatoes, basil and a splash of olive oil."]


def tickets() -> tuple[list[str], list[str]]:
    texts, themes = [], []
    for theme, (starts, ends) in THEMES.items():
        for s, e in itertools.product(starts, ends):
            texts.append(f"{s} {e}")
            themes.append(theme)
    order = np.random.default_rng(0).permutation(len(texts))  # themes interleaved, as in a real inbox
    return [texts[i] for i in order] + OFF_TOPIC, [themes[i] for i in order] + ["none", "none"]


@pytest.fixture(scope="module")
def data():
    from llmlab.weights.registry import load_encoder

    texts, themes = tickets()
    x = load_encoder("minilm").encode(texts).numpy()
    return texts, themes, x


@pytest.fixture(scope="module")
def result(data):
    texts, _, x = data
    return topics(texts, embeddings=x, seed=0)


def test_finds_the_themes(data, result):
    from sklearn.metrics import normalized_mutual_info_score

    texts, themes, _ = data
    assert len(result.topics) == 4
    assigned = np.array(result.assignments)
    on_topic = assigned[: -len(OFF_TOPIC)]
    assert normalized_mutual_info_score(themes[: -len(OFF_TOPIC)], on_topic) > 0.95
    assert (on_topic >= 0).mean() > 0.95
    assert assigned[-len(OFF_TOPIC):].tolist() == [-1] * len(OFF_TOPIC)  # about nothing in the inbox
    assert result.outliers >= len(OFF_TOPIC)
    assert [t.size for t in result.topics] == sorted((t.size for t in result.topics), reverse=True)
    assert sum(t.size for t in result.topics) + result.outliers == len(texts)
    assert all(0 < t.share < 1 for t in result.topics)


def test_keywords_are_the_theme_words(data, result):
    _, themes, _ = data
    assigned = np.array(result.assignments)
    theme_words = {"password": {"password", "login", "log", "reset"}, "refund": {"refund", "returned"},
                   "delivery": {"parcel", "delivery", "courier", "tracking", "delivered"},
                   "invoice": {"invoice", "charge", "billing", "charged", "billed"}}
    for t in result.topics:
        theme = max(set(themes), key=lambda th: ((assigned == t.id) & (np.array(themes) == th)).sum())
        assert set(t.keywords[:3]) & theme_words[theme], (theme, t.keywords)
        assert not set(t.keywords) & {"the", "my", "i", "and", "is"}  # stop words are dropped
        assert len(t.representatives) == 3
        assert all(themes[r] == theme for r in t.representative_rows)


def test_deterministic_with_a_seed(data, result):
    texts, _, x = data
    again = topics(texts, embeddings=x, seed=0)
    assert again.assignments == result.assignments
    assert [t.keywords for t in again.topics] == [t.keywords for t in result.topics]



def test_empty_texts_are_left_out(data, result):
    """Blank cells, all alike, would be the largest "topic"; they are left out and put back as "empty"."""
    texts, _, x = data
    blank = ["", "   ", "\n"] * 8  # 24 blank texts among 98, spread through the file
    mixed, positions = list(texts), []
    for k, b in enumerate(blank):
        positions.append(4 * k + 1)
        mixed.insert(4 * k + 1, b)
    vectors = np.insert(x, [p - k for k, p in enumerate(positions)], 0.0, axis=0)
    assert [mixed[i] for i in range(len(mixed)) if i not in positions] == texts
    found = topics(mixed, embeddings=vectors, seed=0)
    assert found.empty_rows == positions and found.with_content == len(texts)
    assert [found.assignments[i] for i in positions] == [-1] * len(blank)
    assert [a for i, a in enumerate(found.assignments) if i not in positions] == result.assignments
    assert [t.keywords for t in found.topics] == [t.keywords for t in result.topics]
    assert all(mixed[r].strip() for t in found.topics for r in t.representative_rows)
    assert [t.share for t in found.topics] == [t.share for t in result.topics]
    names = found.names
    assert {names[i] for i in positions} == {"empty"} and names.count("outlier") == found.outliers
    assert found.details["empty_texts"] == len(blank)
    with pytest.raises(Exception, match="all 3 texts are empty"):
        topics(["", " ", ""])


def blobs(sizes: list[int], spread: float = 0.05, dim: int = 16, seed: int = 0) -> np.ndarray:
    """(sum(sizes), dim) vectors in one tight blob per size: stand-ins for the embeddings of clear topics."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    return np.concatenate([c + spread * rng.normal(size=(s, dim)) for c, s in zip(centres, sizes)]).astype(np.float32)


def test_texts_from_python():
    """A tuple, a generator, a numpy array or a pandas Series (any index) are the texts of a list; None
    and NaN are empty cells; one string or a number among the texts is refused."""
    texts = [f"my card {i} is lost" for i in range(12)] + [f"the refund {i} is late" for i in range(12)]
    x = blobs([12, 12])
    found = topics(texts, embeddings=x)
    assert len(found.topics) == 2
    for given in (tuple(texts), (t for t in texts), np.array(texts)):
        assert topics(given, embeddings=x).assignments == found.assignments
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"text": ["skip"] + texts, "keep": [False] + [True] * len(texts)}, index=range(100, 125))
    assert topics(frame[frame.keep].text, embeddings=x).assignments == found.assignments
    gaps = texts[:5] + [None] + texts[5:] + [float("nan")]
    with_gaps = topics(gaps, embeddings=np.insert(x, [5, len(x)], 0.0, axis=0))
    assert with_gaps.empty_rows == [5, 25]
    assert with_gaps.assignments == found.assignments[:5] + [-1] + found.assignments[5:] + [-1]
    with pytest.raises(LlmlabError, match="wrap it in a list"):
        topics("my card is lost")
    with pytest.raises(LlmlabError, match=r"texts\[3\] is int"):
        topics(texts[:3] + [7] + texts[3:], embeddings=x)
    with pytest.raises(LlmlabError, match=r"embeddings must be \(25, dim\), not \(3, 8\)"):
        topics(texts + [""], embeddings=np.zeros((3, 8)))


def test_texts_all_about_one_thing_are_one_topic(result):
    """HDBSCAN finds no cluster in one tight blob; it is run again allowing a single one, only then."""
    texts = [f"my card is lost{'!' * (i % 3)}" for i in range(30)]
    found = topics(texts, embeddings=blobs([30]))
    assert len(found.topics) == 1 and found.topics[0].size >= 28
    assert found.details["single_cluster"] and "card" in found.topics[0].keywords
    assert not result.details["single_cluster"]  # four themes: HDBSCAN as usual


def test_chinese_keywords_are_character_bigrams():
    """Chinese has no spaces: a clause is one "word", so its Han runs are taken as character bigrams."""
    assert cjk_bigrams("外卖送餐很快") == " 外卖 卖送 送餐 餐很 很快 "
    assert cjk_bigrams("好") == " 好 " and cjk_bigrams("card lost") == "card lost"
    assert cjk_bigrams("送餐 fast，好吃").split() == ["送餐", "fast，", "好吃"]
    # by hand: bigrams that both texts of a topic use
    words = keywords(["外卖送餐太慢", "送餐太慢了", "味道好吃", "很好吃，味道正宗"], np.array([0, 0, 1, 1]))
    assert set(words[0]) == {"送餐", "餐太", "太慢"} and set(words[1]) == {"味道", "好吃"}
    # the whole app, on two groups of reviews that share their endings
    ends = ["，下次不点了。", "，希望改进。", "，很失望。", "！"]
    delivery = [s + e for s in ["外卖送餐太慢", "送餐等了一个小时", "外卖到的时候都凉了"] for e in ends]
    taste = [s + e for s in ["味道很好，好吃", "菜的味道不错", "饭菜好吃，味道正宗"] for e in ends]
    found = topics(delivery + taste, embeddings=blobs([12, 12]))
    assert len(found.topics) == 2
    by_group = {found.assignments[0]: "delivery", found.assignments[-1]: "taste"}
    for t in found.topics:
        assert len(t.keywords) >= 3 and all(len(w) == 2 for w in t.keywords), t.keywords
        expected = {"delivery": {"送餐", "外卖"}, "taste": {"味道", "好吃"}}[by_group[t.id]]
        assert expected <= set(t.keywords[:4]), t.keywords


def test_class_tfidf_matches_bertopic_and_the_formula():
    from bertopic.vectorizers import ClassTfidfTransformer

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, size=(4, 12)).astype(float)
    counts[:, 0] += 1  # every word occurs somewhere
    counts[:, 1] += 1
    counts[0, -1] += (4 - counts.sum() % 4) % 4  # mean class total is a whole number (BERTopic rounds it down)
    ours = class_tfidf(sp.csr_matrix(counts))
    peer = ClassTfidfTransformer().fit_transform(sp.csr_matrix(counts)).toarray()
    np.testing.assert_allclose(ours, peer, rtol=1e-12, atol=1e-12)
    tf = counts / counts.sum(axis=1, keepdims=True)
    direct = tf * np.log(1 + counts.sum(axis=1).mean() / counts.sum(axis=0))
    np.testing.assert_allclose(ours, direct, rtol=1e-12)


def test_keywords_and_representatives_by_hand():
    texts = ["apple banana", "apple cherry", "apple banana", "dog cat", "dog cat fish", "dog fish", "the zebra"]
    labels = np.array([0, 0, 0, 1, 1, 1, -1])
    words = keywords(texts, labels, n=2)
    # "dog" is in all three texts of topic 1, "cat" and "fish" in two: 3/7 * log(1 + A/3) > 2/7 * log(1 + A/2)
    # for the mean class size A = (6 + 7 + 1) / 3 ("the" is a stop word)
    assert words[0][0] == "apple" and words[1][0] == "dog"
    assert "the" not in words[0] + words[1]
    x = np.array([[1, 0], [0.8, 0.6], [1, 0.05], [0, 1], [0.6, 0.8], [0.5, 0.85], [0.7, 0.7]])
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    # by hand: topic 0's centroid is (0.974, 0.226), cosines 0.974, 0.915, 0.984: rows 2, 0, 1;
    # topic 1's is (0.384, 0.923), cosines 0.923, 0.969, 0.991: rows 5, 4, 3 (no ties)
    for t, expected in ((0, [2, 0, 1]), (1, [5, 4, 3])):
        rows = np.flatnonzero(labels == t)
        centre = x[rows].mean(axis=0)
        cosines = x[rows] @ (centre / np.linalg.norm(centre))
        assert rows[np.argsort(-cosines)].tolist() == expected and np.diff(np.sort(cosines)).min() > 0.01
    reps = representatives(x, labels, n=2)
    assert reps[0] == [2, 0]
    assert reps[1] == [5, 4]
    assert all(labels[r] == t for t, rows in enumerate(reps) for r in rows)


def test_near_duplicate_topics_are_merged():
    """Two groups whose centroids have cosine ~0.95 are one topic at the default 0.9, and stay two at a threshold
    just above their cosine; a distant third group stays apart either way."""
    from llmlab.apps.topics import MERGE_SIMILARITY, merge_similar

    rng = np.random.default_rng(0)
    axes = np.eye(8)
    tilt = 0.95 * axes[0] + np.sqrt(1 - 0.95**2) * axes[1]  # cosine 0.95 to axes[0]
    groups = [axes[0], tilt, axes[4]]
    x = np.concatenate([g + 0.02 * rng.normal(size=(10, 8)) for g in groups])
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.repeat([0, 1, 2], 10)
    labels[[3, 17]] = -1  # outliers stay outliers
    centres = np.stack([x[labels == t].mean(axis=0) for t in range(3)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cosine = float(centres[0] @ centres[1])
    assert MERGE_SIMILARITY < cosine < 0.97 and np.abs(centres[:2] @ centres[2]).max() < 0.2
    merged = merge_similar(x, labels, MERGE_SIMILARITY)
    assert (merged[labels == -1] == -1).all()
    assert len(set(merged[labels == 0])) == len(set(merged[labels == 2])) == 1
    assert merged[0] == merged[10] != merged[20] and sorted(set(merged.tolist()) - {-1}) == [0, 1]
    assert (merged[labels >= 0] >= 0).all()
    apart = merge_similar(x, labels, cosine + 0.01)  # asked for more similarity than they have: three topics
    assert len({apart[0], apart[10], apart[20]}) == 3
    assert all(len(set(apart[labels == t])) == 1 for t in range(3)) and (apart[labels == -1] == -1).all()


def test_keywords_are_said_by_two_texts_of_the_topic():
    """One ticket's typo or name is particular to its topic, but it is not what the topic is about."""
    texts = ["card lost knwo", "card lost yesterday", "card lost abroad", "fee charged", "fee charged twice"]
    words = keywords(texts, np.array([0, 0, 0, 1, 1]))
    assert words[0] == ["lost", "card"] or words[0] == ["card", "lost"]
    assert not {"knwo", "yesterday", "abroad", "twice"} & set(words[0] + words[1])


def test_clean_name():
    assert _clean_name(' "Password reset problems."\n') == "Password reset problems"
    assert _clean_name("Name: Late deliveries") == "Late deliveries"
    assert _clean_name("I'm sorry for your loss") == ""  # not a name: the topic keeps its keyword name
    assert _clean_name("Package lost in shipping can be checked by checking the tracking") == ""
    assert _clean_name("Order 0000458734") == "" and _clean_name("Cancel order #") == ""  # ids, not issues
    assert _clean_name("Top 10 complaints") == "Top 10 complaints"


def test_model_names_are_distinct():
    from llmlab.apps.topics import _distinct

    found = [Topic(i, f"t{i}", 10, 0.1, kw, [], []) for i, kw in
             enumerate([["order", "cancel"], ["order", "cancel", "refund"], ["order", "cancel"], ["x"]])]
    assert _distinct(["Cancel order", "Cancel order", "Cancel order", None], found) == [
        "Cancel order", "Cancel order (refund)", None, None]


def test_llm_names(smollm2_model):  # the session's fp32 SmolLM2, shared with other tests
    from llmlab.apps.topics import llm_names

    found = [Topic(0, "refund, returned", 24, 0.25, ["refund", "returned", "money", "order"],
                   ["I returned the shoes and I still have no refund.", "when will I get my refund?",
                    "I want a full refund."], [0, 1, 2])]
    name = llm_names(found, decoder=smollm2_model)[0]
    assert 0 < len(name) <= 60 and "\n" not in name
    assert "refund" in name.lower()


def test_names_written_by_the_model_replace_the_keyword_names(data, result, smollm2_model):
    """With label_with_llm, each topic the model named (llm_names, run here on the same topics) carries that
    name and named_by "model"; a topic the model gave no name keeps its keyword name."""
    from llmlab.apps.topics import llm_names

    texts, _, x = data
    named = topics(texts, embeddings=x, seed=0, label_with_llm=True, decoder=smollm2_model)
    assert named.assignments == result.assignments and len(named.topics) == len(result.topics)
    expected = llm_names(result.topics, decoder=smollm2_model)
    assert any(name is not None for name in expected)  # (greedy, fp32: three names and one None at this writing)
    for topic, plain, name in zip(named.topics, result.topics, expected):
        assert plain.named_by == "keywords" and plain.name == ", ".join(plain.keywords[:3])
        if name is None:
            assert (topic.name, topic.named_by) == (plain.name, "keywords")
        else:
            assert (topic.name, topic.named_by) == (name, "model")


# --- the command line ---------------------------------------------------------------------------------
def write_tickets(path, texts, column="ticket"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", column])
        w.writerows(enumerate(texts))


def test_cli_writes_all_files(data, tmp_path, capsys):
    texts, themes, _ = data
    src, out = tmp_path / "tickets.csv", tmp_path / "out"
    write_tickets(src, texts)
    assert main(["topics", str(src), "--text-column", "ticket", "--out", str(out), "--quiet", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["topics"]) == 4 and doc["texts"] == len(texts)
    assert sorted(p.name for p in out.iterdir()) == ["assignments.csv", "report.md", "topics.csv", "topics_map.png"]
    with open(out / "assignments.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "ticket", "topic", "topic_name"]
    assert [r["ticket"] for r in rows] == texts
    names = {t["id"]: t["name"] for t in doc["topics"]}
    assert doc["assignments"] == [int(r["topic"]) for r in rows] and doc["empty_rows"] == []
    for r in rows:
        assert r["topic_name"] == ("outlier" if r["topic"] == "-1" else names[int(r["topic"])])
    assert [r["topic"] for r in rows[-len(OFF_TOPIC):]] == ["-1"] * len(OFF_TOPIC)
    with open(out / "topics.csv", encoding="utf-8", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["topic"] for r in table] == ["0", "1", "2", "3", "-1"]
    assert [r["named_by"] for r in table[:4]] == ["keywords"] * 4 and all(t["named_by"] == "keywords"
                                                                            for t in doc["topics"])
    assert sum(int(r["size"]) for r in table) == len(texts)
    # run again on its own output: the file's topic columns are kept, the new ones get a suffix
    assert main(["topics", str(out / "assignments.csv"), "--text-column", "ticket", "--out", str(tmp_path / "again"),
                 "--quiet", "--format", "json"]) == 0
    with open(tmp_path / "again" / "assignments.csv", encoding="utf-8", newline="") as f:
        again = list(csv.DictReader(f))
    assert list(again[0]) == ["id", "ticket", "topic", "topic_name", "topic_2", "topic_name_2"]
    assert [r["topic"] for r in again] == [r["topic"] for r in rows]
    assert (out / "topics_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "topics_map.png" in report and "| topic | name | size | share | keywords |" in report
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("case, message", [
    ("missing column", "no column 'ticket'"),
    ("empty", "file is empty"),
    ("too few", "too few for topics of at least 10"),
    ("latin-1", "not valid UTF-8"),
    ("header only", "no data rows"),
])
def test_cli_bad_input(tmp_path, capsys, case, message):
    src, out = tmp_path / "in.csv", tmp_path / "out"
    if case == "missing column":
        write_tickets(src, ["a", "b"], column="text")
    elif case == "empty":
        src.write_bytes(b"")
    elif case == "too few":
        write_tickets(src, [f"ticket {i}" for i in range(12)])
    elif case == "latin-1":
        src.write_bytes("id,ticket\n1,caf\u00e9 ferm\u00e9\n".encode("latin-1"))
    else:
        src.write_text("id,ticket\n", encoding="utf-8")
    assert main(["topics", str(src), "--text-column", "ticket", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_cli_min_topic_size_below_two(tmp_path, capsys):
    src = tmp_path / "in.csv"
    write_tickets(src, [f"ticket {i}" for i in range(30)])
    with pytest.raises(SystemExit) as e:  # refused by the argument parser, naming the flag
        main(["topics", str(src), "--text-column", "ticket", "--min-topic-size", "1", "--quiet"])
    assert e.value.code == 2 and "argument --min-topic-size: must be at least 2, not 1" in capsys.readouterr().err
    with pytest.raises(LlmlabError, match="the minimum topic size must be at least 2, not 1"):  # and in Python
        topics([f"ticket {i}" for i in range(30)], min_topic_size=1)


def test_to_dict_is_plain_json(data, result):
    """What the server will send: json.dumps takes it as it is; rows in input order, empty ones marked."""
    import json

    texts, _, x = data
    found = topics(["", *texts], embeddings=np.concatenate([np.zeros((1, x.shape[1]), x.dtype), x]), seed=0)
    doc = json.loads(json.dumps(found.to_dict(), allow_nan=False))
    assert doc["texts"] == len(texts) + 1 and doc["empty_texts"] == 1 and doc["empty_rows"] == [0]
    assert doc["assignments"] == [-1, *result.assignments] and doc["outliers"] == result.outliers
    assert doc["outlier_share"] == pytest.approx(result.outliers / len(texts))
    assert [t["keywords"] for t in doc["topics"]] == [t.keywords for t in result.topics]
    assert [t["representative_rows"] for t in doc["topics"]] == [[r + 1 for r in t.representative_rows]
                                                                  for t in result.topics]
    assert doc["details"]["seed"] == 0 and "embeddings" not in doc
    vectors = found.to_dict(embeddings=True)["embeddings"]
    assert len(vectors) == len(texts) + 1 and vectors[1] == pytest.approx(x[0].tolist())


def test_a_cluster_of_most_texts_is_split_into_its_parts():
    """HDBSCAN's excess of mass may keep one wide cluster over the finer ones inside it (seen: 270
    of 300 short Chinese reviews as one topic); such a cluster is clustered again on its own."""
    from llmlab.apps.topics import split_dominant

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 5)) * 3  # five tight groups ...
    parts = np.concatenate([c + rng.normal(size=(50, 5)) * 0.1 for c in centres])
    far = rng.normal(size=(20, 5)) * 0.1 + 40  # ... and one small group far away
    reduced = np.concatenate([parts, far])
    labels = np.array([0] * 250 + [1] * 20)  # the five as one cluster, 93% of the texts
    split = split_dominant(reduced, labels, 10)
    assert split.max() + 1 == 6 and (split[250:] == split[250]).all() and split[250] not in split[:250]
    for g in range(5):  # each group one topic of its own
        assert len(set(split[g * 50:(g + 1) * 50]) - {-1}) == 1 and (split[g * 50:(g + 1) * 50] >= 0).mean() > 0.8
    half = np.array([0] * 135 + [1] * 135)  # no cluster holds more than half: as they were
    assert np.array_equal(split_dominant(reduced, half, 10), half)
    one = np.zeros(270, dtype=np.int64)  # one cluster only (texts all about one thing): as it was
    assert np.array_equal(split_dominant(reduced, one, 10), one)


def test_short_chinese_reviews_are_several_topics_not_one(shared_data):
    """The README's example (every 33rd of the first 9,900 waimai reviews): excess of mass kept 270 of
    the 300 as one topic at the default seed; that cluster is now clustered again into its parts."""
    with open(shared_data / "chinese" / "reviews" / "waimai_10k.csv", encoding="utf-8", newline="") as f:
        reviews = [row["review"] for row in csv.DictReader(f)]
    texts = reviews[:9900:33][:300]
    found = topics(texts)
    assert len(found.topics) >= 5 and max(t.size for t in found.topics) <= len(texts) / 2
    assert found.outliers <= 0.1 * len(texts)
    assert any({"太慢", "慢了"} & set(t.keywords[:3]) for t in found.topics)  # slow delivery, a topic of its own
