"""Classification heads (llmlab.train.classify) on tiny random bodies: a separable toy task is
learned, a frozen body stays put, layer-wise lr groups, length-sorted micro-batches give the whole
batch's gradient, save/load predicts the same, `llmlab classify --model DIR`."""

import json

import pytest
import torch
import torch.nn.functional as F

from llmlab.errors import LlmlabError
from llmlab.models.decoder import Decoder, DecoderConfig
from llmlab.models.encoder import BertConfig, BertModel
from llmlab.train.classify import (
    ClassifierTrainConfig,
    TextClassifier,
    batch_backward,
    body_groups,
    build_classifier,
    fit_classifier,
    load_classifier,
    predict,
    rdrop_loss,
    save_classifier,
)

TEXTS = ["good great fine", "great good", "fine good nice", "nice great",
         "bad awful poor", "awful bad", "poor bad ugly", "ugly awful"] * 4
LABELS = ["pos", "pos", "pos", "pos", "neg", "neg", "neg", "neg"] * 4


class Words:
    """A toy tokenizer: one id per word, 1 = start, 2 = end."""

    vocab = ["[PAD]", "[CLS]", "[SEP]", "good", "great", "fine", "nice", "bad", "awful", "poor", "ugly"]

    def encode(self, text):
        return [1] + [self.vocab.index(w) for w in text.split()] + [2]


def tiny_encoder(layers: int = 1) -> BertModel:
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=11, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16)
    return BertModel(cfg)


def tiny_decoder() -> Decoder:
    torch.manual_seed(0)
    return Decoder(DecoderConfig(family="llama", vocab_size=11, dim=16, n_layers=1, n_heads=2, ffn_dim=32,
                                 max_seq_len=16))


def test_encoder_classifier_learns_a_separable_task():
    clf = TextClassifier(tiny_encoder(), "encoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=8, dropout=0.0)
    fit_classifier(clf, TEXTS, LABELS, ClassifierTrainConfig(epochs=15, lr=3e-3, batch_size=8), progress=False)
    predicted, confidence = predict(clf, ["good nice", "bad ugly poor"])
    assert predicted == ["pos", "neg"] and min(confidence) > 0.6


def test_decoder_classifier_reads_the_last_real_token():
    clf = TextClassifier(tiny_decoder(), "decoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=8, dropout=0.0)
    ids, mask = clf.batch([[1, 3, 2], [1, 7, 8, 9, 2]])
    single = clf.features(*clf.batch([[1, 3, 2]]))
    torch.testing.assert_close(clf.features(ids, mask)[0], single[0], rtol=0, atol=1e-5)  # padding not seen
    fit_classifier(clf, TEXTS, LABELS, ClassifierTrainConfig(epochs=15, lr=3e-3, batch_size=8), progress=False)
    assert predict(clf, ["great fine", "awful poor"])[0] == ["pos", "neg"]


def test_frozen_body_trains_only_the_head():
    clf = TextClassifier(tiny_encoder(), "encoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=8)
    before = {k: v.clone() for k, v in clf.body.state_dict().items()}
    head = clf.head.weight.clone()
    fit_classifier(clf, TEXTS, LABELS, ClassifierTrainConfig(epochs=2, lr=1e-2, batch_size=8, freeze=True),
                   progress=False)
    assert all(torch.equal(before[k], v) for k, v in clf.body.state_dict().items())
    assert not torch.equal(head, clf.head.weight)


def test_layer_decay_gives_lower_blocks_smaller_steps():
    body = tiny_encoder(layers=2)
    groups = body_groups(body, 1.0, 0.01, layer_decay=0.5)
    lr = {name: g["lr"] for g in groups for name in g["names"]}
    assert sorted(lr) == sorted(name for name, _ in body.named_parameters())  # every parameter once
    assert lr["embeddings.word_embeddings.weight"] == 0.125  # 0.5 ** (2 + 1)
    assert lr["encoder.layer.0.attention.self.query.weight"] == 0.25
    assert lr["encoder.layer.1.output.dense.bias"] == 0.5
    assert all(g["lr"] == 1.0 for g in body_groups(body, 1.0, 0.01))  # no decay: one lr
    decoder = {name: g["lr"] for g in body_groups(tiny_decoder(), 1.0, 0.0, 0.5) for name in g["names"]}
    assert decoder["embed_tokens.weight"] == 0.25 and decoder["layers.0.mlp.up_proj.weight"] == 0.5
    assert decoder["norm.weight"] == 1.0  # above the blocks: the full rate


def test_micro_batches_give_the_whole_batch_gradient():
    clf = TextClassifier(tiny_encoder(), "encoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=8, dropout=0.0)
    rows = [clf.encode(t) for t in ["good", "bad awful poor ugly", "great fine", "nice", "ugly bad poor"]]
    y = [1, 0, 1, 1, 0]
    grads = []
    for pieces in (1, 3):
        clf.zero_grad()
        loss = batch_backward(clf, rows, y, [0, 1, 2, 3, 4], pieces, label_smoothing=0.1)
        grads.append((loss, [p.grad.clone() for p in clf.parameters()]))
    assert abs(grads[0][0] - grads[1][0]) < 1e-6
    for whole, pieced in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(pieced, whole, rtol=1e-4, atol=1e-6)


def test_label_smoothing_and_options_train():
    clf = TextClassifier(tiny_encoder(2), "encoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=8, dropout=0.0)
    cfg = ClassifierTrainConfig(epochs=15, lr=3e-3, batch_size=8, label_smoothing=0.1, layer_decay=0.8,
                                micro_batches=2)
    fit_classifier(clf, TEXTS, LABELS, cfg, progress=False)
    assert predict(clf, ["good nice", "bad ugly poor"])[0] == ["pos", "neg"]


def test_rdrop_adds_the_disagreement_of_two_dropout_draws():
    clf = TextClassifier(tiny_encoder(), "encoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=8, dropout=0.3)
    ids, mask = clf.batch([clf.encode(t) for t in ["good great", "bad awful poor", "nice"]])
    target = torch.tensor([1, 0, 1])
    clf.eval()  # no dropout: both copies agree, so R-Drop is plain cross-entropy
    plain = F.cross_entropy(clf(ids, mask), target, label_smoothing=0.1)
    torch.testing.assert_close(rdrop_loss(clf, ids, mask, target, 0.1, 5.0), plain)
    clf.train()
    torch.manual_seed(0)
    both = rdrop_loss(clf, ids, mask, target, 0.0, 0.0)  # the two copies' mean cross-entropy
    torch.manual_seed(0)
    logits = clf(torch.cat([ids, ids]), torch.cat([mask, mask]))
    p1, p2 = logits[:3].softmax(-1), logits[3:].softmax(-1)
    kl = ((p1 * (p1 / p2).log()).sum(-1) + (p2 * (p2 / p1).log()).sum(-1)).mean() / 2  # symmetric KL by hand
    assert kl > 0  # the draws differ
    torch.manual_seed(0)
    torch.testing.assert_close(rdrop_loss(clf, ids, mask, target, 0.0, 2.0), both + 2.0 * kl)
    cfg = ClassifierTrainConfig(epochs=15, lr=3e-3, batch_size=8, rdrop=1.0, body_dropout=0.1, micro_batches=2)
    fit_classifier(clf, TEXTS, LABELS, cfg, progress=False)
    assert predict(clf, ["good nice", "bad ugly poor"])[0] == ["pos", "neg"]


def test_long_texts_are_cut_and_counted():
    clf = TextClassifier(tiny_encoder(), "encoder", Words(), 16, ["neg", "pos"], pad_id=0, max_len=4)
    assert clf.encode("good great fine nice") == [1, 3, 4, 2] and clf.truncated == 1


def test_save_load_and_cli_predict(tmp_path, monkeypatch, capsys):
    import llmlab.train.classify as module
    from llmlab.cli import main

    def build(model, labels, max_len=128, dropout=0.1):  # the "tiny" base, instead of a named model
        assert model == "tiny"
        return TextClassifier(tiny_encoder(), "encoder", Words(), 16, labels, pad_id=0, max_len=max_len)

    monkeypatch.setattr(module, "build_classifier", build)
    clf = build("tiny", ["neg", "pos"], 8)
    fit_classifier(clf, TEXTS, LABELS, ClassifierTrainConfig(epochs=10, lr=3e-3, batch_size=8), progress=False)
    save_classifier(clf, tmp_path / "clf", "tiny", frozen=False)
    again = load_classifier(tmp_path / "clf")
    assert predict(again, TEXTS[:8]) == predict(clf, TEXTS[:8])
    csv = tmp_path / "test.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(TEXTS[:8], LABELS[:8])))
    assert main(["classify", str(csv), "--text-column", "text", "--label-column", "label",
                 "--model", str(tmp_path / "clf"), "--format", "json", "--quiet"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["method"] == "finetuned" and doc["metrics"]["accuracy"] == 1.0


def test_cli_not_a_classifier_folder(tmp_path, capsys):
    from llmlab.cli import main

    csv = tmp_path / "t.csv"
    csv.write_text("text\nhello\n")
    assert main(["classify", str(csv), "--text-column", "text", "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("llmlab: error: ") and "not a fine-tuned classifier folder" in err and "\n" not in err


class FakeEncoder:
    """Sentence vectors for the hybrid half of the ensemble: word counts over the toy vocabulary."""

    def encode(self, texts, progress=False):
        return torch.tensor([[float(t.split().count(w)) for w in Words.vocab[3:]] for t in texts])


def test_ensemble_is_the_mean_of_finetuned_and_hybrid(tmp_path, capsys, monkeypatch):
    import llmlab.train.classify as module
    from llmlab.apps.classify import classify
    from llmlab.cli import main

    def build(model, labels, max_len=128, dropout=0.1):  # the "tiny" base, instead of a named model
        return TextClassifier(tiny_encoder(), "encoder", Words(), 16, labels, pad_id=0, max_len=max_len)

    monkeypatch.setattr(module, "build_classifier", build)
    clf = build("tiny", ["pos", "neg"], 8)  # labels deliberately not in sorted order
    fit_classifier(clf, TEXTS, LABELS, ClassifierTrainConfig(epochs=3, lr=3e-3, batch_size=8), progress=False)
    save_classifier(clf, tmp_path / "clf", "tiny", frozen=False)
    test = ["good nice", "awful ugly poor", "fine bad"]
    kw = dict(train_texts=TEXTS, train_labels=LABELS, encoder=FakeEncoder(), model=str(tmp_path / "clf"))
    tuned = classify(test, "finetuned", model=str(tmp_path / "clf"))
    linear = classify(test, "hybrid", **kw)
    both = classify(test, "ensemble", true_labels=["pos", "neg", "pos"], **kw)
    assert both.labels == linear.labels == ["neg", "pos"] and tuned.labels == ["pos", "neg"]
    expected = (tuned.probabilities[:, ::-1] + linear.probabilities) / 2  # columns in hybrid's order
    assert abs(both.probabilities - expected).max() < 1e-6
    assert both.predicted == [both.labels[i] for i in expected.argmax(axis=1)] and both.metrics is not None
    csv = tmp_path / "test.csv"
    csv.write_text("text,label\nx good,pos\n")
    assert main(["classify", str(csv), "--text-column", "text", "--method", "ensemble", "--quiet"]) == 2
    assert "needs --model DIR" in capsys.readouterr().err
    other = [lab.replace("neg", "bad") for lab in LABELS]
    with pytest.raises(LlmlabError, match="are not the training file's"):
        classify(test, "ensemble", **{**kw, "train_labels": other})


def test_several_classifiers_average_their_probabilities(tmp_path, capsys, monkeypatch):
    import json

    import llmlab.train.classify as module
    from llmlab.apps.classify import classify
    from llmlab.cli import main

    def build(model, labels, max_len=128, dropout=0.1):
        return TextClassifier(tiny_encoder(), "encoder", Words(), 16, labels, pad_id=0, max_len=max_len)

    monkeypatch.setattr(module, "build_classifier", build)
    folders = []
    for seed, order in ((0, ["pos", "neg"]), (1, ["neg", "pos"])):  # two seeds, label columns in other orders
        torch.manual_seed(seed)
        clf = build("tiny", order, 8)
        fit_classifier(clf, TEXTS, LABELS, ClassifierTrainConfig(epochs=2, lr=3e-3, batch_size=8, seed=seed),
                       progress=False)
        save_classifier(clf, tmp_path / f"clf{seed}", "tiny", frozen=False)
        folders.append(str(tmp_path / f"clf{seed}"))
    test = ["good nice", "awful ugly poor", "fine bad", "bad good"]
    a, b = (classify(test, "finetuned", model=f) for f in folders)
    assert abs(a.probabilities - b.probabilities[:, ::-1]).max() > 1e-3  # two different models
    both = classify(test, "finetuned", model=folders)
    assert both.labels == ["pos", "neg"] and both.details["model"] == folders
    expected = (a.probabilities + b.probabilities[:, ::-1]) / 2
    assert abs(both.probabilities - expected).max() < 1e-6
    assert both.predicted == [both.labels[i] for i in expected.argmax(axis=1)]
    kw = dict(train_texts=TEXTS, train_labels=LABELS, encoder=FakeEncoder())
    linear = classify(test, "hybrid", **kw)
    mixed = classify(test, "ensemble", model=folders, **kw)
    assert abs(mixed.probabilities - (expected[:, ::-1] + linear.probabilities) / 2).max() < 1e-6
    csv = tmp_path / "test.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(TEXTS[:8], LABELS[:8])))
    assert main(["classify", str(csv), "--text-column", "text", "--label-column", "label", "--model", folders[0],
                 "--model", folders[1], "--format", "json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out)
    want = classify(TEXTS[:8], "finetuned", model=folders)
    assert doc["method"] == "finetuned" and [p["predicted_label"] for p in doc["predictions"]] == want.predicted
    torch.manual_seed(2)
    other = build("tiny", ["yes", "no"], 8)
    save_classifier(other, tmp_path / "other", "tiny", frozen=False)
    with pytest.raises(LlmlabError, match="average classifiers of one task only"):
        classify(test, "finetuned", model=[folders[0], str(tmp_path / "other")])


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_classifier_on_our_own_pretrained_checkpoint(char_data, tmp_path, objective):
    """A decoder (causal LM) or encoder (masked LM) pre-trained here is a base like smollm2 / minilm."""
    from llmlab.train.pretrain import train

    from .conftest import tiny

    run = tmp_path / objective
    family = "bert" if objective == "mlm" else "gpt2"
    train(tiny(char_data, run, objective=objective, family=family, max_iters=20), log=lambda *a: None)
    texts = ["the king is dead", "long live the king", "the queen is well", "a song of love"] * 6
    labels = ["sad", "glad", "glad", "glad"] * 6
    clf = build_classifier(str(run), ["sad", "glad"], max_len=16)
    assert clf.kind == ("encoder" if objective == "mlm" else "decoder")
    fit_classifier(clf, texts, labels, ClassifierTrainConfig(epochs=20, lr=3e-3, batch_size=8), progress=False)
    save_classifier(clf, tmp_path / "clf", str(run), frozen=False)
    again = load_classifier(tmp_path / "clf")
    assert predict(again, texts[:4])[0] == predict(clf, texts[:4])[0] == labels[:4]


def test_cli_finetune_classify_seed_fixes_the_head(tmp_path, monkeypatch, capsys):
    """`llmlab finetune classify --seed N` seeds the new head's weights too, not only the batch order."""
    from safetensors.torch import load_file

    import llmlab.train.classify as module
    from llmlab.cli import main

    body = tiny_encoder()
    body_state = {k: v.clone() for k, v in body.state_dict().items()}

    def build(model, labels, max_len=128, dropout=0.1):  # the same body each time; the head drawn here
        body.load_state_dict(body_state)
        return TextClassifier(body, "encoder", Words(), 16, labels, pad_id=0, max_len=max_len)

    monkeypatch.setattr(module, "build_classifier", build)
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(TEXTS, LABELS)))
    heads = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        torch.manual_seed(int(name.encode()[0]))  # whatever state the caller left behind
        assert main(["finetune", "classify", str(train), "--text-column", "text", "--label-column", "label",
                     "--model", "tiny", "--out", str(tmp_path / name), "--epochs", "1", "--seed", seed,
                     "--quiet", "--format", "json"]) == 0
        heads.append(load_file(tmp_path / name / "head.safetensors")["weight"])
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])
    # Rows with a blank text or label are left out (a blank label was a class of its own).
    train.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(TEXTS, LABELS)) + " ,pos\nno label,\n")
    assert main(["finetune", "classify", str(train), "--text-column", "text", "--label-column", "label",
                 "--model", "tiny", "--out", str(tmp_path / "d"), "--epochs", "1", "--quiet", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert doc["labels"] == sorted(set(LABELS)) and doc["train_examples"] == len(TEXTS)
