"""Text classification three ways, on our own models.

- ``embeddings``: MiniLM sentence embeddings plus a logistic-regression head fitted on
  labelled training texts (scikit-learn; its regularisation strength picked by
  cross-validation on the training set only).
- ``bow``: the same head on TF-IDF word and bigram counts (llmlab.embed.bow).
- ``hybrid``: the head on both side by side: the embedding carries meaning, the counts the
  exact words that sentence embeddings smooth away.
- ``zero-shot``: no training data. Each label gets a description ("A positive movie
  review: ..."); a text takes the label whose description embedding is most similar.
- ``generative``: SmolLM2 is asked, through its chat template, which label fits; every
  allowed label is scored as a continuation of that prompt (sum of token log-probabilities,
  end-of-turn included), minus its score for a content-free text (contextual calibration,
  Zhao et al. 2021), and the most likely wins, so no free text is ever parsed.
- ``finetuned``: a classifier folder made by `llmlab finetune classify` (llmlab.train.classify:
  MiniLM or a decoder with a linear head, trained end to end) predicts directly. Several folders
  (the same task trained with different seeds) predict the mean of their probabilities.
- ``ensemble``: the mean of the ``finetuned`` and ``hybrid`` class probabilities, with equal
  weights fixed in advance (not fitted): a model trained end to end and a linear head on
  frozen features make different mistakes.

Results carry a prediction and a confidence per text, and, when true labels are known,
accuracy, macro-F1, a per-class table and the confusion matrix.
Tests: tests/apps/test_classify.py; figures vs the peer pipeline: bench/apps.py.
"""

import os
from dataclasses import asdict, dataclass, field

import numpy as np

from llmlab.apps.inputs import label_list, same_length, text_list
from llmlab.errors import LlmlabError
from llmlab.fileio import atomic_write_bytes
from llmlab.plain import plain, rounded

METHODS = ("hybrid", "embeddings", "bow", "zero-shot", "generative", "finetuned", "ensemble")
SUPERVISED = ("hybrid", "embeddings", "bow")


@dataclass
class Metrics:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true label, columns: predicted, in `labels` order


@dataclass
class Classification:
    method: str
    labels: list[str]
    predicted: list[str]
    confidence: list[float]
    metrics: Metrics | None = None
    details: dict = field(default_factory=dict)  # e.g. the chosen regularisation strength
    probabilities: np.ndarray | None = field(default=None, repr=False)  # (N, labels), when the method has them
    true_labels: list[str] | None = field(default=None, repr=False)  # as given ("" where unknown), when given

    def to_dict(self, probabilities: bool = False) -> dict:
        """The result as plain JSON values (what `llmlab classify --format json` prints): one
        prediction per text, in input order, with its row number (from 0), its confidence and,
        when true labels were given, the true label; the metrics when they were computed. With
        ``probabilities``, each prediction also maps every label to its probability (methods
        that have them). Empty texts have no label: None."""
        d = self.details
        predictions = []
        for i, (p, c) in enumerate(zip(self.predicted, self.confidence)):
            row = {"row": i, "predicted_label": p or None, "confidence": rounded(c) if p else None}
            if self.true_labels is not None:
                row["true_label"] = self.true_labels[i] or None
            if probabilities and self.probabilities is not None and p:
                row["probabilities"] = {n: rounded(x) for n, x in zip(self.labels, self.probabilities[i].tolist())}
            predictions.append(row)
        doc = {"method": self.method, "labels": self.labels,
               "empty_texts": d.get("empty_texts", 0), "cut_texts": d.get("cut_texts") or d.get("truncated") or 0,
               "unscored": d.get("unscored", 0),
               "true_labels_not_predictable": d.get("true_labels_not_predictable", []),
               "training": {k: d[k] for k in ("train_rows", "features", "C", "cv_folds", "cv_accuracy") if k in d}
               or None,
               "model": d.get("model"),
               "predictions": predictions}
        if self.metrics:
            doc["metrics"] = asdict(self.metrics)
        return plain(doc)


def classify(
    texts: list[str],
    method: str = "embeddings",
    labels: dict[str, str] | None = None,
    train_texts: list[str] | None = None,
    train_labels: list[str] | None = None,
    true_labels: list[str] | None = None,
    encoder=None,
    decoder=None,
    question: str | None = None,
    progress: bool = False,
    model: str | list[str] | None = None,
) -> Classification:
    """Predict a label for each text.

    ``labels`` maps each allowed label to a description (used by zero-shot and generative;
    a label without one is described by itself). The generative method scores the labels as
    the model's answers, or the descriptions of labels that are codes with no letter ("0" =
    "negative"). ``question`` is what the generative method
    asks (default: which of the labels fits); a task-specific question such as "Is the
    sentiment of this movie review positive or negative?" helps a small model a lot.
    ``encoder`` / ``decoder`` default to the bundled MiniLM / SmolLM2 (int4). ``model`` is the
    folder of a fine-tuned classifier (methods ``finetuned`` and ``ensemble``), or a list of
    folders whose probabilities are averaged.

    Empty (blank) texts get no label: predicted "" with confidence 0, left out of the metrics
    (``details["empty_texts"]`` counts them). Rows whose true label is blank are predicted but
    not scored (``details["unscored"]``). Training rows with a blank text or label are dropped.
    """
    if method not in METHODS:
        raise LlmlabError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    if texts is None:
        raise LlmlabError("no texts to classify")
    texts = text_list(texts)
    if not texts:
        raise LlmlabError("no texts to classify")
    labels = _label_descriptions(labels)
    if true_labels is not None:
        true_labels = label_list(true_labels, "true_labels")
        same_length(texts, true_labels, "texts", "true labels")
    if train_texts is not None:
        train_texts = text_list(train_texts, "train_texts")
    if train_labels is not None:
        train_labels = label_list(train_labels, "train_labels")
    if train_texts is not None and train_labels is not None:  # a blank text or label teaches nothing
        same_length(train_texts, train_labels, "training texts", "training labels")
        pairs = [(t, y) for t, y in zip(train_texts, train_labels) if t.strip() and y.strip()]
        if len(pairs) < len(train_texts):
            train_texts, train_labels = [t for t, _ in pairs], [y for _, y in pairs]
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if len(keep) < len(texts):  # classify the texts with content, then put the blank ones back, unlabelled
        if not keep:
            raise LlmlabError(f"all {len(texts)} texts are empty")
        found = classify([texts[i] for i in keep], method, labels, train_texts, train_labels,
                         None if true_labels is None else [true_labels[i] for i in keep], encoder, decoder, question,
                         progress, model)
        result = _put_back(found, keep, len(texts))
        result.true_labels = true_labels
        return result
    if method == "finetuned":
        result = _finetuned(texts, model, progress)
    elif method == "ensemble":
        if not train_texts or not train_labels:
            raise LlmlabError("the ensemble method averages the finetuned model (--model DIR) with the hybrid "
                              "method: give training texts and labels too")
        result = _ensemble(texts, model, train_texts, train_labels, encoder, progress)
    elif method in SUPERVISED:
        if not train_texts or not train_labels:
            raise LlmlabError(f"the {method} method learns from labelled examples: give training texts and labels")
        names = sorted(set(train_labels))
        if len(names) < 2:
            raise LlmlabError(f"the training labels hold only {names}: at least two classes are needed")
        result = _supervised(method, texts, train_texts, train_labels, names, encoder, progress)
    else:
        if not labels or len(labels) < 2:
            raise LlmlabError(f"the {method} method needs at least two labels (--labels a,b or a=description,...)")
        names = list(labels)
        descriptions = [labels[n] or n for n in names]
        if method == "zero-shot":
            result = _zero_shot(texts, names, descriptions, encoder, progress)
        else:
            result = _generative(texts, names, descriptions, decoder, question, progress)
    if true_labels is not None:  # rows without a true label are predicted but not scored
        scored = [i for i, y in enumerate(true_labels) if y.strip()]
        if not scored:
            raise LlmlabError("every true label is blank: nothing to score")
        if len(scored) < len(true_labels):
            result.details["unscored"] = len(true_labels) - len(scored)
        result.metrics = evaluate([true_labels[i] for i in scored], [result.predicted[i] for i in scored],
                                  result.labels)
        foreign = sorted({true_labels[i] for i in scored} - set(result.labels))
        if foreign:  # "0"/"1" in the file, "negative"/"positive" given: every one of those rows is wrong
            result.details["true_labels_not_predictable"] = foreign
        result.true_labels = true_labels
    return result


def _label_descriptions(labels) -> dict[str, str] | None:
    """``labels`` as {label: description or ""}: a dict, or a list of labels each described by itself."""
    if labels is None:
        return None
    if isinstance(labels, dict):
        names = label_list(list(labels), "labels")
        out = {}
        for name, description in zip(names, labels.values()):
            if description is not None and not isinstance(description, str):
                raise LlmlabError(f"the description of label {name!r} is {type(description).__name__}, not a text")
            out[name] = description or ""
    else:
        names = label_list(labels, "labels")
        out = dict.fromkeys(names, "")
    if "" in out:
        raise LlmlabError("a label is blank")
    if len(out) < len(names):
        raise LlmlabError(f"a label is given twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return out


def _put_back(found: Classification, keep: list[int], n: int) -> Classification:
    """``found`` for the texts at positions ``keep`` of ``n``, as the result for all ``n`` (the
    others unlabelled: "" with confidence 0)."""
    predicted, confidence = [""] * n, [0.0] * n
    for i, label, c in zip(keep, found.predicted, found.confidence):
        predicted[i], confidence[i] = label, c
    probabilities = None
    if found.probabilities is not None:
        probabilities = np.zeros((n, found.probabilities.shape[1]), dtype=found.probabilities.dtype)
        probabilities[keep] = found.probabilities
    return Classification(found.method, found.labels, predicted, confidence, found.metrics,
                          found.details | {"empty_texts": n - len(keep)}, probabilities)


def evaluate(true: list[str], predicted: list[str], labels: list[str]) -> Metrics:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    names = list(dict.fromkeys([*labels, *sorted(set(true) - set(labels))]))  # true labels nobody predicts, too
    p, r, f, s = precision_recall_fscore_support(true, predicted, labels=names, zero_division=0)
    per_class = {n: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, n in enumerate(names)}
    return Metrics(
        accuracy=float(accuracy_score(true, predicted)),
        # over the classes that occur as true or predicted labels (scikit-learn's default): a class
        # predicted but never true counts, with F1 0, as it does in the per-class table
        macro_f1=float(f1_score(true, predicted, average="macro", zero_division=0)),
        per_class=per_class,
        confusion=confusion_matrix(true, predicted, labels=names).tolist(),
    )


def _encoder(encoder):
    if encoder is not None:
        return encoder
    from llmlab.apps.bundled import sentence_encoder

    return sentence_encoder()


def _supervised(method, texts, train_texts, train_labels, names, encoder, progress) -> Classification:
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    from llmlab.embed import BagOfWords

    parts_train, parts = [], []
    if method in ("embeddings", "hybrid"):
        enc = _encoder(encoder)
        parts_train.append(sp.csr_matrix(enc.encode(train_texts, progress=progress).numpy()))
        parts.append(sp.csr_matrix(enc.encode(texts, progress=progress).numpy()))
    if method in ("bow", "hybrid"):
        bow = BagOfWords(ngram_range=(1, 2), min_df=2 if len(train_texts) >= 50 else 1, sublinear_tf=True)
        parts_train.append(bow.fit_transform(train_texts))
        parts.append(bow.transform(texts))
    x_train, x = sp.hstack(parts_train).tocsr(), sp.hstack(parts).tocsr()  # rows: L2-normalised blocks
    folds = min(3, min(train_labels.count(n) for n in names))
    chosen, cv_accuracy = 1.0, None  # scikit-learn's default C when there are too few rows to choose
    if folds >= 2:  # pick the regularisation strength on the training data alone
        chosen, cv_accuracy = _choose_c(x_train, np.array(train_labels), folds, progress)
    head = LogisticRegression(C=chosen, max_iter=3000).fit(x_train, train_labels)
    probs = head.predict_proba(x)  # (N, classes) in head.classes_ order
    classes = [str(c) for c in head.classes_]
    best = probs.argmax(axis=1)
    return Classification(method, classes, [classes[i] for i in best], probs.max(axis=1).tolist(),
                          details={"C": chosen, "cv_folds": folds, "cv_accuracy": cv_accuracy, "features": x.shape[1],
                                   "train_rows": len(train_texts)}, probabilities=probs)


C_GRID = (0.3, 1.0, 3.0, 10.0)


def _choose_c(x, y: np.ndarray, folds: int, progress: bool) -> tuple[float, float]:
    """(C, its mean accuracy): the grid's C with the best mean accuracy over stratified folds, the
    first of equals (what GridSearchCV(cv=folds) chooses), the fits run in parallel processes
    (a fit is single-threaded: 12 fits on 8,000 banking77 rows took 65 s one after another, 25 s
    on two cores) with a progress bar."""
    from joblib import Parallel, cpu_count, delayed
    from sklearn.model_selection import StratifiedKFold
    from tqdm import tqdm

    splits = list(StratifiedKFold(n_splits=folds).split(x, y))
    fits = [(c, train, test) for c in C_GRID for train, test in splits]
    workers = min(len(fits), cpu_count()) if x.shape[0] >= 2000 else 1  # (small: workers cost more)
    jobs = Parallel(n_jobs=workers, return_as="generator")(
        delayed(_fold_accuracy)(x, y, c, train, test) for c, train, test in fits)
    scores = list(tqdm(jobs, total=len(fits), desc="choosing C", unit="fit", disable=not progress))
    means = np.array(scores).reshape(len(C_GRID), folds).mean(axis=1)
    best = int(np.argmax(means))
    return C_GRID[best], float(means[best])


def _fold_accuracy(x, y, c, train, test) -> float:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000).fit(x[train], y[train]).score(x[test], y[test])


def _finetuned(texts, model, progress) -> Classification:
    from llmlab.train.classify import load_classifier, predict_proba

    folders = [model] if isinstance(model, str | os.PathLike) else list(model or [])
    if not folders:
        raise LlmlabError("the finetuned method needs a classifier folder (made by `llmlab finetune classify`)")
    labels, each, truncated = None, [], 0
    for folder in folders:  # one model in memory at a time
        clf = load_classifier(folder)
        labels = labels or clf.labels
        if sorted(clf.labels) != sorted(labels):
            raise LlmlabError(f"{folder}: its labels ({', '.join(sorted(clf.labels))}) are not those of "
                              f"{folders[0]} ({', '.join(sorted(labels))}): average classifiers of one task only")
        p = predict_proba(clf, texts, progress=progress).numpy()
        each.append(p[:, [clf.labels.index(n) for n in labels]])  # columns in the first classifier's order
        truncated = max(truncated, clf.truncated)
    probs = np.mean(each, axis=0)
    best = probs.argmax(axis=1)
    names = [str(f) for f in folders]
    return Classification("finetuned", labels, [labels[i] for i in best], probs.max(axis=1).tolist(),
                          details={"model": names[0] if len(names) == 1 else names, "truncated": truncated},
                          probabilities=probs)


def _ensemble(texts, model, train_texts, train_labels, encoder, progress) -> Classification:
    tuned = _finetuned(texts, model, progress)
    names = sorted(set(train_labels))
    if sorted(tuned.labels) != names:
        raise LlmlabError(f"{tuned.details['model']}: the classifier's labels ({', '.join(sorted(tuned.labels))}) "
                          f"are not the training file's ({', '.join(names)})")
    linear = _supervised("hybrid", texts, train_texts, train_labels, names, encoder, progress)
    columns = [tuned.labels.index(n) for n in linear.labels]  # the classifier's columns in hybrid's order
    probs = (tuned.probabilities[:, columns] + linear.probabilities) / 2
    best = probs.argmax(axis=1)
    return Classification("ensemble", linear.labels, [linear.labels[i] for i in best], probs.max(axis=1).tolist(),
                          details={"model": tuned.details["model"], "C": linear.details["C"]}, probabilities=probs)


def _zero_shot(texts, names, descriptions, encoder, progress) -> Classification:
    enc = _encoder(encoder)
    x = enc.encode(texts, progress=progress)
    d = enc.encode(descriptions)
    x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    d = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    sims = x @ d.T  # (N, labels) cosine similarities
    probs = (sims / 0.05).softmax(dim=-1)  # a sharp softmax turns similarities into a confidence
    best = sims.argmax(dim=-1)
    return Classification("zero-shot", names, [names[i] for i in best.tolist()],
                          probs.max(dim=-1).values.tolist(), details={"descriptions": descriptions})


def _generative(texts, names, descriptions, decoder, question, progress) -> Classification:
    from tqdm import tqdm

    from llmlab.generate import ChatTemplate, PromptCache, continuation_logprobs
    from llmlab.generate.generate import continuation_room
    from llmlab.nn.quantized import float_weights

    if decoder is None:
        from llmlab.apps.bundled import chat_decoder

        decoder = chat_decoder()
    model, tok = decoder.model, decoder.tokenizer
    template = ChatTemplate(decoder.chat_template or "", tok.bos_token or "", tok.eos_token or "")
    end = tok.special_tokens.get(tok.eos_token) if tok.eos_token else None
    # what the model answers with: the label, or for a code ("0", "1") its description ("negative")
    answers = [n if any(c.isalpha() for c in n) or not any(c.isalpha() for c in d) else d
               for n, d in zip(names, descriptions)]
    twice = {a for a in answers if answers.count(a) > 1}  # two codes described alike: they answer as themselves
    answers = [n if a in twice else a for n, a in zip(names, answers)]
    options = [tok.encode(a) + ([end] if end is not None else []) for a in answers]  # each answer + end of turn
    if question is None:
        question = f"Which label fits this text: {', '.join(answers[:-1])} or {answers[-1]}?"
        described = [f"{a}: {d}" for a, d in zip(answers, descriptions) if d != a]
        if described:
            question += "\n" + "\n".join(described)

    def prompt(text: str) -> list[int]:
        return tok.encode(template.render([{"role": "user", "content": f"{question}\n\nText: {text}"}]))

    room = model.config.max_seq_len - max(len(o) for o in options)  # the prompt and the longest label fit
    frame = len(prompt(""))
    if frame >= room:
        raise LlmlabError(f"the question and labels alone take {frame} tokens, more than the model's context window "
                          f"of {model.config.max_seq_len} leaves")
    cut = 0

    def fitted(text: str) -> list[int]:
        """The prompt for ``text``; a text too long for the context window keeps its beginning."""
        nonlocal cut
        ids = prompt(text)
        if len(ids) <= room:
            return ids
        cut += 1
        pieces = tok.encode(text, special=False)
        keep = max(room - frame - 2, 0)  # a token or two of slack: joining may merge differently
        while len(ids := prompt(tok.decode(pieces[:keep]))) > room:
            keep -= max(len(ids) - room, 1)
        return ids

    # Contextual calibration (Zhao et al. 2021): small models prefer some labels whatever the
    # text; their scores for a content-free text measure that bias, which is subtracted.
    # Scores are float32 throughout (every_call): the int4 kernels' bfloat16 logits moved them by up to 0.15.
    predicted, confidence = [], []
    with float_weights(model, every_call=True):
        blank = prompt("N/A")
        prompts = [fitted(text) for text in texts]
        # the instructions before each text are read once (the prefix's keys and values kept)
        prefix = PromptCache.common(model, [blank, *prompts], continuation_room(options))
        bias = continuation_logprobs(model, blank, options, prefix)
        for ids in tqdm(prompts, desc="classifying", unit="text", disable=not progress):
            scores = continuation_logprobs(model, ids, options, prefix) - bias
            probs = scores.softmax(dim=0)
            predicted.append(names[int(scores.argmax())])
            confidence.append(float(probs.max()))
    return Classification("generative", names, predicted, confidence, details={"cut_texts": cut} if cut else {})


def confusion_png(result: Classification, path) -> None:
    """Write the confusion matrix as a PNG (atomically)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result.metrics
    names = list(m.per_class)
    cm = np.array(m.confusion)
    size = max(4.0, 0.28 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8 if len(names) > 10 else 10)
    ax.set_yticks(range(len(names)), names, fontsize=8 if len(names) > 10 else 10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result.method}: accuracy {m.accuracy:.3f}, macro-F1 {m.macro_f1:.3f}")
    if len(names) <= 12:
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
