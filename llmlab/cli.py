"""The `llmlab` command. Thin: it parses arguments, calls the library, formats results.

Every error caused by input is printed as one line, ``llmlab: error: ...``, with exit
status 2; no traceback reaches the user.
"""

import argparse
import codecs
import contextlib
import io
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from llmlab import __version__
from llmlab.errors import EncodingError, LlmlabError
from llmlab.fileio import check_encoding, decode_text, decode_utf8, output_folder, output_path, read_bytes
from llmlab.plain import plain


def _json(doc, default=None) -> str:
    """``doc`` as one line of JSON: numpy numbers as numbers, NaN and infinities as null (never
    the invalid NaN token), text unescaped."""
    return json.dumps(plain(doc, default), ensure_ascii=False, allow_nan=False)


def _print_json(doc, default=None) -> None:
    print(_json(doc, default))


# --- argument types: checked while parsing, before any work ---------------------------
def _checked(check):
    """An argparse ``type`` from a checker: its LlmlabError becomes argparse's usage error, before any work."""
    def convert(value: str):
        try:
            return check(value)
        except LlmlabError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def _delimiter_for(value: str) -> str:
    from llmlab.apps.tables import delimiter_for

    return delimiter_for("", value)


def _ranged(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type``: an int or a finite float in [low, high] (open ends where said)."""
    span = f"{'(' if low_open else '['}{'-inf' if low is None else low}, {'inf' if high is None else high}" \
           f"{')' if high_open or high is None else ']'}"

    def convert(value: str):
        try:
            x = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{'an integer' if kind is int else 'a number'} is needed, not "
                                             f"{value!r}") from None
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"a finite number is needed, not {value!r}")
        if (low is not None and (x < low or low_open and x == low)) or (
                high is not None and (x > high or high_open and x == high)):
            bound = f"{'>' if low_open else 'at least'} {low}" if high is None else f"in {span}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {value}")
        return x

    return convert


_number = _ranged(float)
_count = _ranged(int, 1)  # tokens, epochs, batch sizes...: at least one
_seed = _ranged(int, 0, 2**32 - 1)  # what every random generator here takes (numpy's: below 2**32)
_whole = _ranged(int, 0)  # 0 or more; where 0 means "off" or "all", the help says so
_threads = _ranged(int, 1, 1024)
_positive = _ranged(float, 0, low_open=True)  # rates, scales, epochs
_nonnegative = _ranged(float, 0)
_share = _ranged(float, 0, 1, high_open=True)  # a fraction or a probability in [0, 1)
_encoding = _checked(check_encoding)
_delimiter = _checked(_delimiter_for)
_out_file = _checked(lambda value: str(output_path(value)))  # a folder, or a path under a file, is refused
_out_folder = _checked(lambda value: str(output_folder(value)))
_out_folder_path = _checked(output_folder)


# --- formatting helpers ---------------------------------------------------------------
_COLOURS = ["\x1b[48;5;153m", "\x1b[48;5;223m", "\x1b[48;5;194m", "\x1b[48;5;225m", "\x1b[48;5;230m"]
_RESET = "\x1b[0m"
_VISIBLE = str.maketrans({" ": "·", "\n": "↵", "\t": "→", "\r": "␍"})


def _use_colour(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _visible(piece: str) -> str:
    """A piece with its whitespace and control characters made visible."""
    piece = piece.translate(_VISIBLE)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in piece)


def _join_pieces(pieces: list[str], colour: bool) -> str:
    visible = {p: _visible(p) for p in set(pieces)}  # each distinct piece once: a long text repeats few
    shown = [visible[p] for p in pieces]
    if colour:
        return "".join(f"\x1b[30m{_COLOURS[i % len(_COLOURS)]}{p}{_RESET}" for i, p in enumerate(shown))
    return "|" + "|".join(shown) + "|"


def _decode_input(data: bytes, source: str, encoding: str | None) -> str:
    """UTF-8 byte for byte (a UTF-8 mark included), UTF-16 / UTF-32 by their mark, or ``encoding``."""
    if encoding is None and data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)):
        return decode_text(data, source)  # the mark names the encoding (UTF-32-LE's starts like UTF-16-LE's)
    return decode_utf8(data, source) if encoding is None else decode_text(data, source, encoding)


def _read_input(args, what: str = "text") -> str:
    if args.text is not None and args.file is not None:
        raise LlmlabError("give either TEXT or -f FILE, not both")
    if args.file is not None:
        if args.file == "-":
            data, source = sys.stdin.buffer.read(), "<stdin>"
        else:  # a file, or a pipe such as <(command)
            data, source = read_bytes(args.file, allow_empty=True), args.file
        text = _decode_input(data, source, args.encoding)
    elif args.text is not None:
        text = args.text
    elif not sys.stdin.isatty():
        text = _decode_input(sys.stdin.buffer.read(), "<stdin>", args.encoding)
    else:
        raise LlmlabError(f"no {what}: give it as an argument, with -f FILE, or on stdin")
    if not text:
        raise LlmlabError(f"empty input: no {what}")
    return text


# --- llmlab tokenize ----------------------------------------------------------------------
def _tokenize_one(tok, text: str, special: bool = True, display: bool = True) -> dict:
    """Ids, pieces, the pieces as shown to a person (``display``, not for JSON) and unknown count."""
    ids = tok.encode(text, special=special)
    from llmlab.tokenize.simple import SplitTokenizer

    if isinstance(tok, SplitTokenizer):
        tokens = tok.tokenize(text, special=special)
        display = tokens
        unknown = sum(i == tok.unk_id for i in ids) if tok.vocab is not None else 0
    else:
        distinct = set(ids)  # each distinct id looked up once
        pieces = {i: tok.id_to_token(i) for i in distinct}
        tokens = [pieces[i] for i in ids]
        shown = {i: tok.display_token(i) for i in distinct} if display else {}
        display = [shown[i] for i in ids] if display else None
        unk = getattr(tok, "unk_token", None)
        unknown = sum(ids.count(i) for i in distinct if pieces[i] == unk)
    return {"tokenizer": tok.name, "kind": tok.kind, "ids": ids, "tokens": tokens,
            "display": display, "unknown": unknown}


def cmd_tokenize(args) -> int:
    from llmlab.tokenize import NAMES, load_tokenizer

    text = _read_input(args)
    colour = _use_colour(args.color, sys.stdout)
    special = not args.no_special
    if args.compare:
        names = list(NAMES) + [t for t in (args.tokenizer or []) if t not in NAMES]
        rows = [_tokenize_one(load_tokenizer(n), text, special, display=args.format != "json") for n in names]
        if args.format == "json":
            doc = {"text": text, "tokenizers": [
                {k: r[k] for k in ("tokenizer", "kind", "ids", "tokens", "unknown")} | {"count": len(r["ids"])}
                for r in rows]}
            _print_json(doc)
            return 0
        width = max(len(r["tokenizer"]) for r in rows)
        print(f"{'tokenizer':<{width}}  {'kind':<10} {'tokens':>6} {'unk':>4}  pieces")
        for r in rows:
            print(f"{r['tokenizer']:<{width}}  {r['kind']:<10} {len(r['ids']):>6} {r['unknown']:>4}  "
                  f"{_join_pieces(r['display'], colour)}")
        return 0
    tok = load_tokenizer((args.tokenizer or ["smollm2"])[-1])
    r = _tokenize_one(tok, text, special, display=args.format != "json")
    if args.format == "json":
        _print_json({"tokenizer": r["tokenizer"], "ids": r["ids"], "tokens": r["tokens"]})
        return 0
    unknown = f", {r['unknown']} unknown" if r["unknown"] else ""
    print(f"{r['tokenizer']} ({r['kind']}): {len(r['ids'])} tokens{unknown}")
    print(_join_pieces(r["display"], colour))
    print("ids:", " ".join(map(str, r["ids"])))
    return 0


# --- llmlab tokenizer train / list ---------------------------------------------------
def cmd_tokenizer_train(args) -> int:
    from llmlab.tokenize.bpe_train import read_chunks, train_bpe

    start = time.perf_counter()
    size = sum(Path(f).stat().st_size for f in args.files if Path(f).is_file())
    tok = train_bpe(
        read_chunks(args.files, errors=args.errors), args.vocab_size,
        special_tokens=args.special_token or ["<|endoftext|>"], min_frequency=args.min_frequency,
        pretokenizer=args.pretokenizer, progress=not args.quiet, name=str(args.out),
    )
    path = tok.save(args.out)
    seconds = time.perf_counter() - start
    summary = {"path": str(path), "vocab_size": tok.vocab_size, "merges": len(tok.merges),
               "train_bytes": size, "seconds": round(seconds, 3)}
    if args.format == "json":
        _print_json(summary)
    else:
        short = ""
        if tok.vocab_size < args.vocab_size:
            short = f" (stopped early: no pair occurs {args.min_frequency}+ times)"
        print(f"trained byte-level BPE: {tok.vocab_size} tokens, {len(tok.merges)} merges{short}, "
              f"{size / 1e6:.2f} MB in {seconds:.2f} s")
        print(f"saved {path}; use it with: llmlab tokenize --tokenizer {args.out} TEXT")
    return 0


def cmd_tokenizer_list(args) -> int:
    from llmlab.tokenize import NAMES

    if args.format == "json":
        _print_json(NAMES)
    else:
        for name, what in NAMES.items():
            print(f"{name:<11} {what}")
    return 0


# --- llmlab complete / chat ---------------------------------------------------------------
def _generation_config(args):
    from llmlab.generate import GenerationConfig

    return GenerationConfig(max_new_tokens=args.max_new_tokens or args.default_new_tokens,
                            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                            stop=args.stop or [],
                            repetition_penalty=args.repetition_penalty,
                            repetition_window=args.repetition_window or None)


def cmd_complete(args) -> int:
    from llmlab.generate import stream
    from llmlab.weights.registry import load_adapted_decoder

    prompt = _read_input(args, what="prompt")
    config = _generation_config(args)
    bundle = load_adapted_decoder(args.model, args.adapter, precision=args.precision)
    prompt = bundle.tokenizer.encode(prompt)
    room = bundle.config.max_seq_len - len(prompt)
    if args.max_new_tokens is None and room >= 1:  # a small model's window (64 tokens) bounds the default
        config.max_new_tokens = min(config.max_new_tokens, room)
    s = stream(bundle.model, bundle.tokenizer, prompt, config)
    if args.format == "json":
        for _ in s:
            pass
        c = s.completion
        _print_json({"model": bundle.tokenizer.name, "prompt_tokens": c.prompt_tokens, "ids": c.ids,
                     "text": c.text, "finish_reason": c.finish_reason})
        return 0
    for piece in s:
        sys.stdout.write(piece)
        sys.stdout.flush()
    c = s.completion
    sys.stdout.write("\n")
    print(f"[{c.prompt_tokens} prompt tokens, {len(c.ids)} new, {c.tokens_per_second:.1f} tok/s, "
          f"finish: {c.finish_reason}]", file=sys.stderr)
    return 0


def cmd_chat(args) -> int:
    from llmlab.generate import ChatSession, ChatTemplate
    from llmlab.generate.chat import PLAIN_STOP, PLAIN_TEMPLATE
    from llmlab.weights.registry import load_adapted_decoder

    if args.list_presets:
        from llmlab.apps.presets import presets

        if args.format == "json":
            _print_json([{"name": name, "prompt": prompt} for name, prompt in presets().items()])
            return 0
        for name, prompt in presets().items():
            print(f"{name:<12} {prompt}")
        return 0
    if args.preset:
        from llmlab.apps.presets import preset

        if args.system:
            raise LlmlabError("give either --system or --preset, not both")
        args.system = preset(args.preset)
    bundle = load_adapted_decoder(args.model, args.adapter, precision=args.precision)
    source = bundle.chat_template or PLAIN_TEMPLATE
    if not bundle.chat_template:
        print(f"{args.model} has no chat template: plain turns (USER:, ASSISTANT:, a blank line after each); "
              "a base model continues text rather than following instructions", file=sys.stderr)
    tok = bundle.tokenizer
    template = ChatTemplate(source, tok.bos_token or "", tok.eos_token or "")
    session = ChatSession(bundle.model, tok, template, system=args.system, config=_generation_config(args))
    if args.max_new_tokens is None:  # the answer may take up to half the window, the conversation the rest
        session.config.max_new_tokens = min(session.config.max_new_tokens, max(1, bundle.config.max_seq_len // 2))
    if source == PLAIN_TEMPLATE:
        session.config.stop.extend(PLAIN_STOP)
    index = query = None  # query: the last search query; a follow-up question is searched together with it
    if args.index:
        from llmlab.apps.ask import (
            NOT_FOUND,
            RELEVANCE,
            STOP,
            citations,
            retrieve,
            search_query,
            source_message,
            unsupported_quotes,
        )
        from llmlab.apps.search import Index

        index = Index(args.index)
        session.config.stop.extend(STOP)  # as `llmlab ask`: the answer is the first paragraph
    interactive, unanswered = sys.stdin.isatty(), 0
    if interactive:
        print(f"chatting with {args.model} ({bundle.model.num_parameters() / 1e6:.0f}M parameters, context "
              f"{bundle.config.max_seq_len} tokens). /reset, /system TEXT, /exit; Ctrl-C stops an answer",
              file=sys.stderr)
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        except UnicodeDecodeError as e:
            line = e.object.decode("utf-8", "surrogateescape")  # reported just below
        line = line.strip().lstrip("\ufeff").strip()  # a UTF-8 byte-order mark is not part of the message
        if not line:
            continue
        bad = next((c for c in line if "\udc80" <= c <= "\udcff"), None)  # bytes that were not UTF-8
        if bad is not None:
            message = f"<stdin>: the message is not valid UTF-8 (byte 0x{ord(bad) - 0xdc00:02x})"
            if not interactive:
                raise LlmlabError(message + "; convert the input to UTF-8")
            print(f"[{message}; not sent]", file=sys.stderr)
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            session.reset()
            query = None
            print("[conversation cleared]", file=sys.stderr)
            continue
        if line.startswith("/system"):
            session.system = line[len("/system"):].strip() or None
            print(f"[system prompt {'set' if session.system else 'cleared'}]", file=sys.stderr)
            continue
        as_json = args.format == "json"
        if index is not None:  # retrieve for this message; below the threshold the model is not asked
            try:
                searched = search_query(line, query)
                sources, relevance = retrieve(index, searched, k=args.k)
            except KeyboardInterrupt:
                if not interactive:
                    raise
                _interrupts.clear()  # Ctrl-C while searching: this message is dropped, the chat goes on
                print("[stopped]", file=sys.stderr)
                continue
            query = searched
            if relevance < RELEVANCE:
                print(_json({"user": line, "assistant": NOT_FOUND, "found": False}) if as_json else NOT_FOUND)
                continue
        try:
            turn = session.send(source_message(line, sources, tok, template) if index is not None else line)
        except LlmlabError as e:  # a message too long for the context window: this one is not sent, the chat goes on
            unanswered += 1
            print(_json({"user": line, "error": str(e)}) if as_json else
                  f"[{e}; not sent]", file=sys.stdout if as_json else sys.stderr)
            continue
        if turn.dropped:
            print(f"[context window: dropped the {turn.dropped} oldest turn(s) to fit "
                  f"{bundle.config.max_seq_len} tokens]", file=sys.stderr)
        if interactive and not as_json:
            sys.stdout.write("assistant> ")
        shown: list[str] = []
        try:
            for piece in turn:
                shown.append(piece)
                if not as_json:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
        except KeyboardInterrupt:
            if not interactive:
                raise
            _interrupts.clear()  # Ctrl-C stops this answer, not the chat (Ctrl-D or /exit ends it)
            said = "".join(shown)
            if turn.completion is None and said.strip():  # pressed between two pieces: the turn recorded nothing
                session.messages.append({"role": "assistant", "content": said})
            if index is not None and said.strip():  # as below: later turns see the question, not the passages
                session.messages[-2]["content"] = line
            print("\n[stopped]", file=sys.stderr)
            continue
        c = turn.completion
        cites, stopped = None, ""
        if index is not None:
            session.messages[-2]["content"] = line  # later turns see the question, not its passages
            try:
                cites = citations(c.text, sources, index.encoder())
            except KeyboardInterrupt:
                if not interactive:
                    raise
                _interrupts.clear()  # Ctrl-C while matching citations: the answer stands, its sources are not listed
                stopped = "[stopped before the sources]"
        if stopped and as_json:
            print(stopped, file=sys.stderr)
        if as_json:
            doc = {"user": line, "assistant": c.text, "prompt_tokens": c.prompt_tokens, "new_tokens": len(c.ids),
                   "finish_reason": c.finish_reason, "dropped_turns": turn.dropped}
            if cites is not None:
                doc |= {"citations": cites[0], "citations_attributed": cites[2],
                        "unsupported_quotes": unsupported_quotes(c.text, [src.text for src in sources]),
                        "sources": [src.to_dict() for src in sources]}
            _print_json(doc)
            sys.stdout.flush()
            continue
        sys.stdout.write("\n")
        if stopped:
            sys.stdout.flush()
            print(stopped, file=sys.stderr)
        if cites is not None:
            _print_sources(sources, *cites, query=line, unquoted=unsupported_quotes(c.text, [s.text for s in sources]))
        if interactive:
            print(f"[{len(c.ids)} tokens, {c.tokens_per_second:.1f} tok/s]", file=sys.stderr)
        sys.stdout.flush()
    if unanswered and not interactive:
        print(f"llmlab: error: {unanswered} message(s) not answered (see above)", file=sys.stderr)
        return 2
    return 0


# --- llmlab embed / similarity ------------------------------------------------------------
def cmd_embed(args) -> int:
    from llmlab.weights.registry import load_encoder

    if args.texts and args.file:
        raise LlmlabError("give either TEXT... or -f FILE, not both")
    if args.texts:
        lines = args.texts
    else:
        args.text = None
        lines = _read_input(args, what="text to embed").splitlines()
    encoder = load_encoder(args.model, precision=args.precision)
    vectors = encoder.encode(lines, batch_size=args.batch_size, progress=len(lines) > 1000)
    _say_cut(encoder)
    out = sys.stdout
    if args.format == "json":  # rounded all at once (the same digits as round(x, 7) one by one, twice as fast)
        for v in vectors.double().numpy().round(7).tolist():
            out.write(json.dumps(v) + "\n")
    else:
        for v in vectors.tolist():
            out.write(" ".join(f"{x:.7g}" for x in v) + "\n")
    return 0


def _say_cut(encoder) -> None:
    if encoder.truncated:  # the model reads at most max_seq_length tokens: the rest is not in the vector
        print(f"note: {encoder.truncated} text(s) longer than {encoder.max_seq_length} tokens: each vector is of "
              "the text's beginning only", file=sys.stderr)


def cmd_similarity(args) -> int:
    from llmlab.weights.registry import load_encoder

    if len(args.texts) < 2:
        raise LlmlabError("give at least two texts to compare")
    encoder = load_encoder(args.model)
    v = encoder.encode(args.texts)
    _say_cut(encoder)
    v = v / v.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    sim = (v @ v.T).tolist()
    if args.format == "json":
        _print_json({"model": args.model, "texts": args.texts, "cosine": sim})
        return 0
    labels = [t if len(t) <= 40 else t[:37] + "..." for t in args.texts]
    width = max(len(lab) for lab in labels)
    print(" " * (width + 2) + " ".join(f"{f'[{i + 1}]':>7}" for i in range(len(labels))))
    for i, (lab, row) in enumerate(zip(labels, sim)):
        print(f"{lab:<{width}}  " + " ".join(f"{x:7.3f}" for x in row) + f"   [{i + 1}]")
    return 0


# --- llmlab classify -------------------------------------------------------------------------
def _parse_labels(spec: str | None) -> dict[str, str] | None:
    """"a,b" -> {a: a, b: b}; "0=bad film,1=good film" -> {"0": "bad film", "1": "good film"}.

    A description may hold commas: a piece without "=" after a described label continues its
    description ("0=bad, boring,1=good" -> {"0": "bad, boring", "1": "good"})."""
    if not spec:
        return None
    items: list[str] = []
    for piece in spec.split(","):
        if items and "=" in items[-1] and "=" not in piece:
            items[-1] += "," + piece
        else:
            items.append(piece)
    labels = {}
    for item in items:
        name, _, description = item.partition("=")
        if not name.strip():
            raise LlmlabError(f"--labels: empty label name in {spec!r}")
        if name.strip() in labels:
            raise LlmlabError(f"--labels: the label {name.strip()!r} is given twice")
        labels[name.strip()] = description.strip() or name.strip()
    return labels


def cmd_classify(args) -> int:
    from llmlab.apps.classify import classify, confusion_png
    from llmlab.apps.tables import added_columns, from_a_spreadsheet, read_csv, write_csv

    if args.model and args.method != "ensemble":  # a classifier folder from `llmlab finetune classify`
        args.method = "finetuned"
    if args.method == "ensemble" and not args.model:
        raise LlmlabError("--method ensemble needs --model DIR (a classifier from `llmlab finetune classify`) "
                          "and --train TRAIN.csv")
    columns = [args.text_column] + ([args.label_column] if args.label_column else [])
    header, rows = read_csv(args.file, columns, args.encoding, args.delimiter)
    texts = [r[args.text_column] for r in rows]
    truth = [r[args.label_column] for r in rows] if args.label_column else None
    labels = _parse_labels(args.labels)
    if labels is None and truth is not None and args.method in ("zero-shot", "generative"):
        labels = {v: v for v in sorted(set(truth) - {""})}
        codes = [v for v in labels if not any(c.isalpha() for c in v)]
        if codes:  # "0" / "1": the texts would be compared with digits
            print(f"llmlab: warning: {args.method} reads what the labels say, and {', '.join(map(repr, codes[:5]))} "
                  f"say nothing; describe them, e.g. --labels '{codes[0]}=a negative review,...'", file=sys.stderr)
    train_texts = train_labels = None
    if args.train_delimiter and not args.train:
        raise LlmlabError("--train-delimiter is the separator of --train TRAIN.csv; give --train too")
    if args.train:
        if not args.label_column:
            raise LlmlabError("--train needs --label-column (the same column name in both files)")
        _, train_rows = read_csv(args.train, [args.text_column, args.label_column], args.encoding,
                                 args.train_delimiter or args.delimiter, flag="--train-delimiter")
        train_texts = [r[args.text_column] for r in train_rows]
        train_labels = [r[args.label_column] for r in train_rows]
    elif args.method in ("hybrid", "embeddings", "bow", "ensemble"):
        raise LlmlabError(f"the {args.method} method needs --train TRAIN.csv with labelled examples "
                          "(or use --method zero-shot / generative with --labels)")
    result = classify(texts, method=args.method, labels=labels, train_texts=train_texts, train_labels=train_labels,
                      true_labels=truth, question=args.question, progress=not args.quiet, model=args.model)
    if result.details.get("cut_texts"):
        print(f"llmlab: {result.details['cut_texts']} text(s) longer than the model's context window were "
              "classified on their beginning", file=sys.stderr)
    if foreign := result.details.get("true_labels_not_predictable"):
        shown = ", ".join(map(repr, foreign[:5])) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        print(f"llmlab: warning: true label(s) {shown} of --label-column are not among the labels this method "
              f"predicts ({', '.join(map(repr, result.labels[:5]))}{', ...' if len(result.labels) > 5 else ''}), "
              "so those rows can only be wrong"
              + ("; name the labels as the file does (--labels 0=a negative review,1=...)" if labels else ""),
              file=sys.stderr)
    png = None
    to_stdout = bool(args.out) and _is_stdout(args.out)  # (before writing: the file written is a new one)
    if args.out:
        extra = added_columns(header, ["predicted_label", "confidence"])
        out_rows = [dict(r, **dict(zip(extra, (p, f"{c:.4f}" if p else ""))))  # an empty text: no label
                    for r, p, c in zip(rows, result.predicted, result.confidence)]
        write_csv(args.out, header + extra, out_rows, args.delimiter, from_a_spreadsheet(args.file, args.encoding))
        # a PNG beside a file of its own, not beside /dev/stdout, /dev/fd/1 or a pipe
        own_file = Path(args.out).is_file() and Path(args.out).absolute().parts[1:2] not in (("dev",), ("proc",))
        if result.metrics and own_file and not to_stdout:
            png = Path(args.out).with_suffix(".confusion.png")
            confusion_png(result, png)
    if to_stdout:  # the predictions went to stdout: the report goes beside them, on stderr
        with contextlib.redirect_stdout(sys.stderr):
            return _report_classification(args, result, texts, png)
    return _report_classification(args, result, texts, png)


def _is_stdout(path) -> bool:
    """Whether ``path`` names the file, pipe or terminal standard output writes to (/dev/stdout, /dev/fd/1)."""
    try:
        a, b = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # no such file; stdout closed (None) or
        return False  # replaced by an object without a descriptor
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


PREVIEW_ROWS = 10  # predictions shown when they are not written to a file


def _report_classification(args, result, texts, png) -> int:
    if args.format == "json":
        _print_json(result.to_dict() | {"out": args.out})
        return 0
    from collections import Counter

    tally = Counter(result.predicted)
    counts = {n: tally[n] for n in result.labels}
    if len(counts) > 10:  # 77 intents on one line were 2,000 characters: the most predicted, then how many more
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:8]
        shown = ", ".join(f"{n}: {c}" for n, c in top) + f", and {len(counts) - 8} more labels"
    else:
        shown = ", ".join(f"{n}: {c}" for n, c in counts.items())
    empty = result.details.get("empty_texts", 0)
    d = result.details
    if "train_rows" in d:
        how = (f"C = {d['C']:g} chosen by {d['cv_folds']}-fold cross-validation, accuracy {d['cv_accuracy']:.4f}"
               if d.get("cv_accuracy") is not None else f"C = {d['C']:g}: too few rows per class to cross-validate")
        print(f"{result.method}: logistic regression on {d['features']:,} features, trained on {d['train_rows']:,} "
              f"labelled rows ({how})")
    print(f"{result.method}: {len(texts)} texts; predicted {shown}"
          + (f"; {empty} empty text{'s' * (empty != 1)} left unlabelled" if empty else ""))
    if result.metrics:
        m = result.metrics
        scored = sum(v["support"] for v in m.per_class.values())
        majority = max(v["support"] for v in m.per_class.values()) / scored
        print(f"accuracy {m.accuracy:.4f}   macro-F1 {m.macro_f1:.4f}   (always the most common true label: "
              f"accuracy {majority:.4f})"
              + (f"   (on the {scored} texts with content and a true label)" if scored < len(texts) else ""))
        width = max(len("label"), *(_columns(_printable(n)) for n in m.per_class))
        print(f"{'label':<{width}}  precision  recall      f1  support")
        for n, v in m.per_class.items():
            print(f"{_pad(_printable(n), width)}  {v['precision']:9.3f} {v['recall']:7.3f} {v['f1']:7.3f} "
                  f"{v['support']:8d}")
    if args.out:
        print(f"predictions written to {args.out}" + (f"; confusion matrix: {png}" if png else ""))
    else:  # the first rows as a sample; the file holds them all
        _preview_predictions(result, texts)
    return 0


def _preview_predictions(result, texts, rows: int = PREVIEW_ROWS) -> None:
    shown = min(rows, len(texts))
    labels = [_printable(p) or "-" for p in result.predicted[:shown]]
    truth = [_printable(t) or "-" for t in result.true_labels[:shown]] if result.true_labels is not None else None
    width = max(_columns("predicted"), *map(_columns, labels))
    true_width = max(_columns("true"), *map(_columns, truth)) if truth else 0
    print(f"\n{'row':>5}  {_pad('predicted', width)}  confidence  " + (f"{_pad('true', true_width)}  " if truth else "")
          + "text")
    for i in range(shown):
        confidence = f"{result.confidence[i]:.3f}" if result.predicted[i] else ""
        print(f"{i:>5}  {_pad(labels[i], width)}  {confidence:>10}  "
              + (f"{_pad(truth[i], true_width)}  " if truth else "") + _cut(_printable(texts[i]), 70))
    more = len(texts) - shown
    print(f"{'… ' + f'{more:,} more rows; ' if more else ''}--out FILE.csv writes every row with predicted_label "
          "and confidence")


def _printable(text) -> str:
    """One line: runs of whitespace as one space, control characters (escape codes) left out."""
    import unicodedata

    return "".join(c for c in " ".join(str(text).split()) if unicodedata.category(c) != "Cc")


def _columns(text: str) -> int:
    """Terminal columns: wide (Chinese, Japanese, most emoji) 2, combining marks 0, others 1."""
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * max(columns - _columns(text), 0)


def _cut(text: str, columns: int) -> str:
    """``text`` in at most ``columns`` terminal columns, "…" where it was cut."""
    if _columns(text) <= columns:
        return text
    kept, used = [], 0
    for c in text:
        used += _columns(c)
        if used > columns - 1:
            break
        kept.append(c)
    return "".join(kept) + "…"


# --- llmlab finetune ------------------------------------------------------------------------
def cmd_finetune_sft(args) -> int:
    from llmlab.train.sft import TrainConfig, run_sft

    cfg = TrainConfig(epochs=args.epochs, lr=args.lr or (2e-4 if args.lora else 2e-5), batch_size=args.batch_size,
                      grad_accum=args.grad_accum, max_steps=args.max_steps, seed=args.seed)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    r = run_sft(args.data, model=args.model, out=args.out, lora=args.lora, rank=args.rank, alpha=args.alpha,
                dropout=args.dropout, targets=targets, merge=args.merge, val_fraction=args.val_fraction,
                max_len=args.max_len, truncate=args.truncate, cfg=cfg, progress=not args.quiet, log=log)
    h = r.history
    doc = {"out": r.out, "kind": r.kind, "trainable_parameters": r.trainable, "parameters": r.total,
           "train_examples": r.train_examples, "val_examples": r.val_examples, "steps": h.steps,
           "tokens": h.tokens, "seconds": round(h.seconds, 2), "data": r.data,
           "train_loss": h.train_loss[-1][1] if h.train_loss else None,
           "val_loss": [[s, round(v, 4)] for s, v in h.val_loss]}
    if args.format == "json":
        _print_json(doc)
        return 0
    val = " -> ".join(f"{v:.4f}" for _, v in h.val_loss) or "no validation set"
    print(f"{r.kind} fine-tune: {h.steps} steps, {h.tokens:,} answer tokens in {h.seconds:.0f} s; "
          f"validation loss {val}")
    if r.data["truncated"] or r.data["dropped"]:
        print(f"length policy: {r.data['truncated']} record(s) truncated, {r.data['dropped']} dropped")
    what = "adapter" if r.kind == "lora" else "model"
    print(f"{what} written to {r.out}" + (f" (use: llmlab chat --model {args.model} --adapter {r.out})"
                                          if r.kind == "lora" else f" (use: llmlab chat --model {r.out})"))
    return 0


def cmd_finetune_classify(args) -> int:
    import torch

    from llmlab.apps.tables import read_csv
    from llmlab.train.classify import ClassifierTrainConfig, build_classifier, fit_classifier, save_classifier

    _, rows = read_csv(args.train, [args.text_column, args.label_column], args.encoding, args.delimiter)
    kept = [r for r in rows if r[args.text_column].strip() and r[args.label_column].strip()]
    if len(kept) < len(rows) and not args.quiet:
        print(f"llmlab: {len(rows) - len(kept)} row(s) with a blank text or label left out", file=sys.stderr)
    texts = [r[args.text_column] for r in kept]
    labels = [r[args.label_column] for r in kept]
    names = sorted(set(labels))
    if not kept:
        raise LlmlabError(f"{args.train}: no row has both a text ({args.text_column!r}) and a label "
                          f"({args.label_column!r})")
    if len(names) < 2:
        raise LlmlabError(f"{args.train}: the column {args.label_column!r} holds only {names}: "
                          "at least two classes are needed")
    cfg = ClassifierTrainConfig(epochs=args.epochs, lr=args.lr or (1e-3 if args.freeze else 5e-5),
                                batch_size=args.batch_size, freeze=args.freeze, seed=args.seed,
                                label_smoothing=args.label_smoothing, layer_decay=args.layer_decay,
                                micro_batches=4)  # length-sorted pieces: the same gradient, less padding
    torch.manual_seed(args.seed)  # the head's initial weights too: same seed, same classifier
    clf = build_classifier(args.model, names, max_len=args.max_len)
    h = fit_classifier(clf, texts, labels, cfg, progress=not args.quiet)
    base = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    save_classifier(clf, args.out, base, frozen=args.freeze)
    doc = {"out": str(args.out), "labels": names, "train_examples": len(texts), "steps": h.steps,
           "seconds": round(h.seconds, 2), "truncated": h.truncated,
           "final_loss": h.loss[-1][1] if h.loss else None}
    if args.format == "json":
        _print_json(doc)
        return 0
    print(f"{clf.kind} classifier on {args.model} ({'frozen body' if args.freeze else 'end to end'}): "
          f"{len(texts)} texts, {len(names)} labels, {h.steps} steps in {h.seconds:.0f} s; "
          f"final loss {doc['final_loss']:.4f}" + (f"; {h.truncated} texts cut to {clf.max_len} tokens"
                                                    if h.truncated else ""))
    print(f"classifier written to {args.out} (use: llmlab classify FILE.csv --model {args.out} "
          f"--text-column {args.text_column})")
    return 0


# --- llmlab topics ----------------------------------------------------------------------------
def cmd_topics(args) -> int:
    from llmlab.apps.tables import added_columns, csv_bytes, from_a_spreadsheet, read_csv
    from llmlab.apps.topics import map_png, report_markdown, topic_rows, topics
    from llmlab.fileio import atomic_write_files

    out = Path(args.out) if args.out else None
    header, rows = read_csv(args.file, [args.text_column], args.encoding, args.delimiter)
    texts = [r[args.text_column] for r in rows]
    result = topics(texts, min_topic_size=args.min_topic_size, label_with_llm=args.label_with_llm,
                    seed=args.seed, progress=not args.quiet)
    _raise_if_interrupted()  # Ctrl-C during numba's compiling (UMAP) is swallowed there: honour it now
    if out is not None:  # everything is made in memory first, then written
        if not args.quiet:
            print("topics: drawing the map (UMAP to 2 dimensions)", file=sys.stderr)
        png = map_png(result, seed=args.seed)
        _raise_if_interrupted()  # (numba compiles here too)
        report = report_markdown(result, Path(args.file).name, "topics_map.png")
        names = result.names
        extra = added_columns(header, ["topic", "topic_name"])
        assigned = [dict(r, **dict(zip(extra, (t, nm)))) for r, t, nm in zip(rows, result.assignments, names)]
        bom = from_a_spreadsheet(args.file, args.encoding)
        atomic_write_files({  # the four change together, or none does
            out / "assignments.csv": csv_bytes(out / "assignments.csv", header + extra, assigned, args.delimiter, bom),
            out / "topics.csv": csv_bytes(out / "topics.csv", *topic_rows(result), args.delimiter, bom),
            out / "topics_map.png": png, out / "report.md": report.encode("utf-8")})
    n = result.with_content
    if args.format == "json":
        _print_json(result.to_dict() | {"out": str(out) if out else None})
        return 0
    k = len(result.empty_rows)
    empty = f" ({k} empty text{'s' * (k != 1)} left out)" if k else ""
    print(f"{len(result.topics)} topics in {n} texts{empty}; {result.outliers} outliers ({result.outliers / n:.1%})")
    unnamed = sum(t.named_by == "keywords" for t in result.topics) if args.label_with_llm else 0
    if unnamed:
        print(f"({unnamed} topic(s) the model gave no usable name keep their keywords, marked *)")
    for t in result.topics:
        mark = "*" if unnamed and t.named_by == "keywords" else ""
        print(f"\n{t.id:3d}. {t.name}{mark}  ({t.size} texts, {t.share:.1%})\n     keywords: {', '.join(t.keywords)}")
        for r in t.representatives:
            print(f"     - {' '.join(r.split())[:160]}")
    if out is not None:
        print(f"\nwritten to {out}: assignments.csv, topics.csv, topics_map.png, report.md")
    return 0


# --- llmlab index / search ----------------------------------------------------------------
def cmd_index(args) -> int:
    from llmlab.apps.search import index_files

    def unreadable(reasons: list[str]) -> None:
        for reason in reasons:
            print(f"llmlab: skipped {reason}", file=sys.stderr)
        if args.encoding is None and any("not valid UTF-8" in reason for reason in reasons):
            print("llmlab: files in another encoding can be read with --encoding NAME (e.g. cp1252, latin-1, gbk); "
                  "UTF-8 files are still read as UTF-8", file=sys.stderr)

    report = index_files(args.paths, args.index, args.chunk_tokens, args.overlap, args.encoding, args.rebuild,
                         args.prune, progress=not args.quiet, unreadable=unreadable)
    if report.gone:  # e.g. a folder moved since: its files would be cited twice (old and new path)
        print(f"llmlab: {len(report.gone)} indexed file(s) are no longer on disk (moved or deleted), e.g. "
              f"{report.gone[0]}; --prune takes them out", file=sys.stderr)
    if args.format == "json":
        _print_json(report.to_dict())
    else:
        removed = f", {report.removed} removed (no longer there)" if report.removed else ""
        skipped = report.unreadable
        print(f"{report.indexed} file(s) indexed, {report.unchanged} unchanged{removed}, "
              f"{report.new_chunks} new chunks; {report.total_chunks} chunks in {args.index}"
              + (f"; {len(skipped)} unreadable" if skipped else ""))
    return 0


def cmd_search(args) -> int:
    from llmlab.apps.search import Index

    if args.queries and args.query:
        raise LlmlabError("give a QUERY or --queries FILE, not both")
    if args.queries:
        from llmlab.fileio import read_text

        queries = [q for q in read_text(args.queries, encoding=args.encoding).splitlines() if q.strip()]
    elif args.query:
        queries = [args.query]
    else:
        raise LlmlabError("give a QUERY or --queries FILE")
    from llmlab.apps.search import SCORE_KINDS, snippet

    index = Index(args.index)
    if len(queries) > 1 and args.mode != "bm25":
        index.prepare(queries, progress=sys.stderr.isatty())
    for query in queries:
        hits = index.search(query, k=args.k, mode=args.mode)
        if args.format == "json":
            _print_json({"query": query, "mode": args.mode, "score": SCORE_KINDS[args.mode],
                         "results": [h.to_dict() for h in hits]})
            continue
        print(f"query: {query}   [{args.mode}; score: {SCORE_KINDS[args.mode]}]")
        for rank, h in enumerate(hits, start=1):
            print(f"{rank:2d}. [{h.score:.4f}] {h.path} (chunk {h.chunk})\n    {snippet(h.text, query)}")
            if h.also:
                print(f"    the same passage is also in {_places(h.also)}")
    return 0


def _places(places: list[dict], shown: int = 3) -> str:
    """'b.md (chunk 0), c.md (chunk 2) and 4 more places'."""
    named = ", ".join(f"{p['path']} (chunk {p['chunk']})" for p in places[:shown])
    return named + (f" and {len(places) - shown} more places" if len(places) > shown else "")


# --- llmlab ask / inspect -------------------------------------------------------------------
def _print_sources(sources, citations: list[int], invalid: list[int], attributed: bool = False,
                   query: str = "", unquoted: list[str] = ()) -> None:
    """The numbered sources after an answer, and what the answer cites."""
    for quote in unquoted:
        print(f"[warning: the quotation \"{quote}\" is in none of the sources]")
    if invalid:
        print(f"[ignored citation(s) {', '.join(f'[{n}]' for n in invalid)}: no such source]")
    if citations:
        how = " (matched by similarity: the model wrote no [n] itself)" if attributed else ""
        print("cites: " + ", ".join(f"[{n}]" for n in citations) + how)
    else:
        print("the answer matches none of the sources; check it against them:")
    from llmlab.apps.search import snippet

    for s in sources:
        mark = "*" if s.n in citations else " "
        cut = ", cut to fit the prompt" if s.trimmed else ""
        print(f"{mark}[{s.n}] {s.path} (chunk {s.chunk}, score {s.score:.4f}{cut})\n     "
              f"{snippet(s.text, query, 200)}")
        if s.also:
            print(f"     the same passage is also in {_places(s.also)}")


def cmd_ask(args) -> int:
    from llmlab.apps.ask import ask
    from llmlab.apps.search import Index
    from llmlab.weights.registry import load_decoder

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    a = ask(args.question, Index(args.index), k=args.k, mode=args.mode, max_new_tokens=args.max_new_tokens,
            decoder=lambda: load_decoder(args.model, precision=args.precision),  # loaded only when needed
            on_text=show if args.format == "text" else None)
    if args.format == "json":
        _print_json(a.to_dict())
        return 0
    if not a.found:
        from llmlab.apps.ask import RELEVANCE

        print(f"{a.answer} (the closest passage's similarity {a.relevance:.2f} is below {RELEVANCE:.2f})")
        return 0
    print("\n")
    _print_sources(a.sources, a.citations, a.invalid, a.attributed, query=args.question, unquoted=a.unquoted)
    return 0


def cmd_inspect(args) -> int:
    from llmlab.apps.inspect import inspect

    checklist = []
    if args.checklist:
        from llmlab.fileio import read_text

        checklist = [line.strip() for line in read_text(args.checklist, encoding=args.encoding).splitlines()
                     if line.strip()]
        if not checklist:
            raise LlmlabError(f"{args.checklist}: no checklist items (one per line)")
    questions = args.ask or []
    summary = args.summary or not (questions or checklist)
    decoder = None
    if summary or questions or checklist:
        from llmlab.weights.registry import load_decoder

        decoder = load_decoder(args.model, precision=args.precision)
    r = inspect(Path(args.document), summary=summary, questions=questions, checklist=checklist, decoder=decoder,
                sentences=args.sentences, progress=not args.quiet, encoding=args.encoding)
    if args.format == "json":
        _print_json(r.to_dict())
        return 0
    print(f"{r.source}: {r.tokens} tokens")
    if r.summary is not None:
        levels = "the whole document at once" if r.parts == [1] else " -> ".join(map(str, r.parts + [1])) + " parts"
        print(f"\nsummary (SmolLM2, map-reduce: {levels}):\n{r.summary}")
        print("\ncentral sentences (MiniLM, closest to the document's centroid, in document order):")
        for sentence in r.central:
            print(f"  - {' '.join(sentence.split())}")
    for f in r.answers:
        print(f"\nQ: {f.question}\nA: {_indented(f.answer, 3)}")
        if f.quote:
            print(f"   quote: \"{' '.join(f.quote.split())}\"")
    if r.checklist:
        print("\nchecklist (verdict: the answer's first word when it is Yes or No; check it against the quote):")
    for f in r.checklist:
        print(f"  [{f.verdict}] {f.question}" + (f"\n      {_indented(f.answer, 6)}" if f.found else ""))
        if f.quote:
            print(f"      quote: \"{' '.join(f.quote.split())}\"")
    return 0


def _indented(text: str, width: int) -> str:
    """``text`` with its later lines indented by ``width`` spaces (an answer under its label)."""
    return ("\n" + " " * width).join(line.strip() for line in text.strip().splitlines() if line.strip())


# --- llmlab word2vec train / similar / analogy / eval --------------------------------------
def cmd_word2vec_train(args) -> int:
    from llmlab.embed.word2vec import Word2VecConfig, corpus_files, train_word2vec

    cfg = Word2VecConfig(sg=not args.cbow, dim=args.dim, window=args.window, negative=args.negative,
                         sample=args.sample, min_count=args.min_count, epochs=args.epochs, threads=args.threads,
                         seed=args.seed)
    files = corpus_files(args.files)
    model = train_word2vec(files, cfg, progress=not args.quiet)
    model.save(args.out, files)
    s = model.stats
    if args.format == "json":
        _print_json({"out": str(args.out)} | s)
        return 0
    print(f"trained {'skip-gram' if cfg.sg else 'CBOW'}: {s['vocab_size']:,} words x {cfg.dim} dims from "
          f"{s['corpus_words']:,} words, {cfg.epochs} epochs ({s['effective_words']:,} words after min_count and "
          f"sub-sampling) in {s['seconds']:.1f} s: {s['effective_words_per_s']:,} words/s, {cfg.threads} thread(s)")
    print(f"saved {args.out}/vectors.bin and {args.out}/word2vec.json; "
          f"try: llmlab word2vec similar WORD --vectors {args.out}")
    return 0


def _print_ranked(pairs, fmt: str) -> None:
    if fmt == "json":
        _print_json([{"word": w, "score": round(s, 6)} for w, s in pairs])
    else:
        for w, s in pairs:
            print(f"{s:7.3f}  {w}")
        if not pairs:
            print("no answer: the vocabulary holds no other words", file=sys.stderr)


def cmd_word2vec_similar(args) -> int:
    from llmlab.embed.word2vec import KeyedVectors

    _print_ranked(KeyedVectors.load(args.vectors).most_similar(args.word.lower(), topn=args.n), args.format)
    return 0


def cmd_word2vec_analogy(args) -> int:
    from llmlab.embed.word2vec import KeyedVectors

    a, b, c = args.a.lower(), args.b.lower(), args.c.lower()
    _print_ranked(KeyedVectors.load(args.vectors).analogy(a, b, c, topn=args.n, method=args.method), args.format)
    return 0


def cmd_word2vec_eval(args) -> int:
    from llmlab.embed.word2vec import KeyedVectors, evaluate_all, load_info, primer_report
    from llmlab.fileio import atomic_write_text

    data = args.data or Path(__file__).resolve().parents[2] / "shared" / "data" / "word_eval"
    if args.data is None and not data.is_dir():
        raise LlmlabError("give --data DIR with questions-words.txt, wordsim353.tsv and simlex999.txt")
    kv = KeyedVectors.load(args.vectors)
    results = evaluate_all(kv, data, args.restrict_vocab)
    if args.report:
        info = load_info(args.vectors) if Path(args.vectors).is_dir() else {}
        atomic_write_text(args.report / "report.md", primer_report(kv, info, results))
    if args.format == "json":
        _print_json(results)
        return 0
    n = len(kv.words)  # below --restrict-vocab, every word the vectors have is searched
    why = (f"a word outside the {args.restrict_vocab:,} most frequent words" if n > args.restrict_vocab
           else f"a word not in the vectors' {n:,}-word vocabulary")
    share = lambda r: f"{100 * r['accuracy']:.1f}%" if r["total"] else "n/a"  # noqa: E731  (no question asked)
    for key in ("analogies", "analogies_3cosmul"):
        r = results[key]
        print(f"{key}: {share(r)} of {r['total']:,} questions ({r['skipped_oov']:,} skipped: {why})")
    for s in results["analogies"]["sections"]:
        print(f"  {s['section']:<28} {share(s):>6} of {s['total']}")
    for key in ("wordsim353", "simlex999"):
        r = results[key]
        few = " (too few pairs for the figure to mean much)" if r["pairs"] < 30 else ""
        rho = (f"{r['spearman']:.3f}" if math.isfinite(r["spearman"])
               else "n/a (the scores or similarities are all equal)")
        print(f"{key}: Spearman {rho} on {r['pairs']} pairs ({r['oov_pairs']} skipped: unknown words){few}")
    if args.report:
        print(f"wrote {args.report / 'report.md'}")
    return 0


# --- llmlab data prepare / train ----------------------------------------------------------
def cmd_data_prepare(args) -> int:
    from llmlab.train.data import prepare

    meta = prepare(args.files, args.tokenizer, args.out, args.val_fraction, progress=sys.stderr.isatty(),
                   errors=args.errors)
    if args.format == "json":
        _print_json(meta)
        return 0
    print(f"wrote {args.out}: {meta['train_tokens']:,} train + {meta['val_tokens']:,} validation tokens "
          f"({meta['dtype']}, vocabulary {meta['vocab_size']:,}, tokenizer {meta['tokenizer']})")
    return 0


TRAIN_FLAGS = {  # flag -> (type, help); each overrides the preset's value when given
    "objective": (str, "clm: causal LM (next token) for decoders; mlm: masked LM for encoders (BERT: 15%% of "
                       "tokens chosen, 80%% [MASK], 10%% random, 10%% kept). Default: mlm for --family bert, else clm"),
    "family": (str, "gpt2 or llama (decoders, default for clm), bert (encoder, default for mlm)"),
    "n_layers": (_count, "transformer blocks"),
    "n_heads": (_count, "attention heads"), "dim": (_count, "model width"),
    "n_kv_heads": (_count, "key/value heads (llama: grouped-query attention)"),
    "ffn_dim": (_count, "MLP hidden width (default 4 x dim)"),
    "max_seq_len": (_count, "context window of the model (default: block size)"),
    "block_size": (_count, "tokens per training window"), "batch_size": (_count, "windows per micro-batch (global)"),
    "grad_accum": (_count, "micro-batches per optimizer step"), "max_iters": (_count, "optimizer steps"),
    "lr": (_positive, "peak learning rate"),
    "min_lr": (_nonnegative, "final learning rate, at most --lr (default: the preset's, or scaled with --lr "
                             "when that is given)"),
    "warmup": (_whole, "warm-up steps (0: none)"),
    "decay_steps": (_count, "step where the decay ends (default max-iters)"),
    "cooldown": (_number, "instead of the cosine: hold the peak rate, then fall linearly to min-lr over this last "
                          "fraction of the steps, in (0, 1] (e.g. 0.4)"),
    "optimizer": (str, "adamw, or muon: Muon (orthogonalised momentum) for the blocks' weight matrices and AdamW "
                       "for embeddings, head, norms and biases"),
    "muon_lr": (_positive, "Muon's peak learning rate (follows the same schedule)"),
    "weight_decay": (_nonnegative, "AdamW decoupled weight decay on Linear weights"),
    "beta2": (_share, "AdamW beta2, in [0, 1)"),
    "grad_clip": (_nonnegative, "clip the gradient norm (0: off)"),
    "eval_interval": (_count, "steps between evaluations"),
    "eval_windows": (_count, "validation windows per evaluation"),
    "sample_chars": (_whole, "at each evaluation, N tokens generated from the model and logged as text; mlm: the "
                             "top guesses at N masked tokens (0: none)"),
    "checkpoint_interval": (_count, "steps between checkpoints (default eval-interval)"),
    "keep": (_whole, "newest checkpoints kept, older ones deleted (0: keep all)"), "seed": (_seed, "random seed"),
    "device": (str, "auto, cpu, cuda, cuda:N"), "threads": (_threads, "CPU threads"),
}


def cmd_train(args) -> int:
    from llmlab.train.presets import PRESETS
    from llmlab.train.pretrain import config_from, train

    if args.preset is not None and args.preset not in PRESETS:
        raise LlmlabError(f"unknown preset {args.preset!r} (presets: {', '.join(PRESETS)})")
    flags = {k: getattr(args, k) for k in TRAIN_FLAGS}
    if args.lr is not None and args.min_lr is None:  # the floor moves with the peak, in the preset's ratio
        base = config_from(PRESETS.get(args.preset), data=args.data, out=args.out)
        flags["min_lr"] = args.lr * base.min_lr / base.lr
    cfg = config_from(PRESETS.get(args.preset), data=args.data, out=args.out, resume=args.resume,
                      progress=not args.quiet, **flags)
    if cfg.min_lr > cfg.lr:
        raise LlmlabError(f"the final learning rate (min-lr {cfg.min_lr:g}) is above the peak (lr {cfg.lr:g}): "
                          "lower --min-lr or raise --lr")
    summary = train(cfg)
    if summary.get("rank", 0) != 0:  # with torchrun: the first process reports for all
        return 0
    if args.format == "json":
        _print_json(summary)
        return 0
    val = f", validation loss {summary['val_loss']:.4f}" if summary["val_loss"] is not None else ""
    if summary.get("val_accuracy") is not None:
        val += f", masked-token accuracy {summary['val_accuracy']:.1%}"
    use = "llmlab embed" if summary["objective"] == "mlm" else "llmlab complete"
    speed = f"{summary['seconds']:.1f} s, {summary['tokens_per_second']:,.0f} tokens/s" if summary["steps_run"] \
        else "no steps left to run"
    print(f"step {summary['step']}: train loss {summary['loss']:.4f}{val}; {speed}; checkpoint in {summary['out']} "
          f"(`{use} --model` reads it)")
    return 0


def _add_train_parsers(sub) -> None:
    dp = sub.add_parser("data", help="prepare a corpus for training")
    dsub = dp.add_subparsers(dest="action", metavar="ACTION")
    dsub.required = True
    pr = dsub.add_parser("prepare", help="tokenise text files into memory-mapped train/validation token files",
                         description="Tokenise FILE... (streamed) into DIR/train.bin and DIR/val.bin; the last "
                                     "--val-fraction of the token stream is the validation split.")
    pr.add_argument("files", nargs="+", metavar="FILE")
    pr.add_argument("--tokenizer", "-t", required=True, metavar="NAME|PATH",
                    help="char (a vocabulary of the corpus's characters), smollm2, a tokenizer file or folder")
    pr.add_argument("--out", "-o", required=True, metavar="DIR", type=_out_folder)
    pr.add_argument("--val-fraction", type=_share, default=0.1, metavar="F", help="default 0.1")
    pr.add_argument("--errors", choices=["strict", "replace"], default="strict",
                    help="invalid UTF-8 in the files: stop with an error (default) or replace with U+FFFD")
    pr.add_argument("--format", choices=["text", "json"], default="text")
    pr.set_defaults(func=cmd_data_prepare)

    tr = sub.add_parser("train", help="pre-train a decoder (causal LM) or an encoder (masked LM) from scratch",
                        description="Pre-train on a folder from `llmlab data prepare`: a decoder with causal "
                                    "language modelling (default), or a BERT encoder with masked language modelling "
                                    "(--objective mlm or --family bert; e.g. --preset bert-tiny). Writes checkpoints "
                                    "(step-XXXXXX, latest), metrics.jsonl and loss.png into --out; `llmlab complete "
                                    "--model OUT` generates from a decoder, `llmlab embed --model OUT` embeds with "
                                    "an encoder (mean pooling). Masked LM uses the tokenizer's [MASK] or adds one id "
                                    "for it, and frames windows [CLS] ... [SEP] when the tokenizer has those "
                                    "(WordPiece).")
    tr.add_argument("--data", required=True, metavar="DIR")
    tr.add_argument("--out", required=True, metavar="DIR", type=_out_folder)
    tr.add_argument("--preset", metavar="NAME", help="named settings (llmlab.train.presets): shakespeare-char, "
                    "tiny, llama-small (decoders), bert-tiny (encoder)")
    for name, (kind, text) in TRAIN_FLAGS.items():
        metavar = "N" if name == "sample_chars" else name.split("_")[-1].upper()  # it counts tokens
        tr.add_argument("--" + name.replace("_", "-"), type=kind, metavar=metavar, help=text)
    tr.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--format", choices=["text", "json"], default="text")
    tr.set_defaults(func=cmd_train)


# --- llmlab experiment -------------------------------------------------------------------
def cmd_experiment(args) -> int:
    from llmlab.experiments import available, run_experiment

    if args.list:
        if args.format == "json":
            _print_json([{"name": name, "claim": e.claim} for name, e in available().items()])
            return 0
        for name, e in available().items():
            print(f"{name:<22} {e.claim}")
        return 0
    if not args.name:
        raise LlmlabError("give an experiment NAME, or --list to see them")
    out = args.out or Path("out") / "experiments" / args.name
    start = time.perf_counter()
    report = run_experiment(args.name, out, quick=args.quick, seed=args.seed)
    seconds = time.perf_counter() - start
    if args.format == "json":
        _print_json({"name": report.name, "claim": report.claim, "quick": args.quick, "seed": args.seed,
                     "headline": report.headline, "checks": report.checks, "report": str(out / "report.md"),
                     "figures": [str(out / f) for f in report.figures], "seconds": round(seconds, 1)}, default=str)
        return 0
    print(f"{report.name}: {report.claim}")
    width = max(map(len, report.headline), default=0)
    for label, value in report.headline.items():
        print(f"  {label:<{width}}  {value:.3f}" if isinstance(value, float) else f"  {label:<{width}}  {value}")
    print(f"wrote {out / 'report.md'} and {len(report.figures)} figure(s) in {seconds:.1f} s")
    return 0


def _experiment_parser(sub) -> None:
    ex = sub.add_parser("experiment", help="run one of the primer's claims as an experiment, writing a report",
                        description="Run an experiment: writes DIR/report.md with tables and PNG plots and prints "
                                    "the headline figures. --quick runs a small version on text bundled with "
                                    "llmlab; the full versions read ../shared/data.")
    ex.add_argument("name", nargs="?", metavar="NAME", help="the experiment (see --list)")
    ex.add_argument("--list", action="store_true", help="the experiments and the claim each tests")
    ex.add_argument("--out", type=_out_folder_path, metavar="DIR", help="where to write (default out/experiments/NAME)")
    ex.add_argument("--quick", action="store_true", help="the small version (seconds, no data sets needed)")
    ex.add_argument("--seed", type=_seed, default=0, metavar="N", help="default 0")
    ex.add_argument("--format", choices=["text", "json"], default="text",
                    help="json: the run's figures as one object; with --list, a list of {name, claim}")
    ex.set_defaults(func=cmd_experiment)


# --- argument parsing ---------------------------------------------------------------
def delimiter_option(sp, what: str) -> None:
    sp.add_argument("--delimiter", type=_delimiter, metavar="CHAR",
                    help=f"the field separator of {what}, e.g. ';' (Excel in many European languages) or tab "
                         "(default: a tab for .tsv files, else a comma)")


def encoding_option(sp, what: str) -> None:
    sp.add_argument("--encoding", type=_encoding, metavar="NAME",
                    help=f"the text encoding of {what} when not UTF-8, e.g. cp1252 (Windows, Excel's plain CSV), "
                         "latin-1, gbk, shift_jis; valid UTF-8, and a byte-order mark's UTF-8/16/32, are read as such "
                         "either way")


DECODER_HELP = ("smollm2 (default), a Llama-family .gguf file, or a folder: a `llmlab train` run (GPT-2 or Llama "
                "family), a `llmlab finetune sft` output, or a Hugging Face Llama / GPT-2 folder")
ENCODER_HELP = ("minilm (default), a sentence-transformers / BERT folder, or a run folder of "
                "`llmlab train --objective mlm` (mean pooling)")
PRECISION_HELP = ("fp32: exact float32 weights; int8 / int4: weight-only quantized blocks, faster and smaller "
                  "(default %(default)s)")
SEARCH_MODE_HELP = ("hybrid (default): the BM25 and MiniLM rankings fused; dense: cosine similarity of MiniLM "
                    "vectors; bm25: word matches")


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line, as every other error: ``llmlab: error: ...``, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"llmlab: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="llmlab", description="Language AI you can read, run and use.")
    p.add_argument("--version", action="version", version=f"llmlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser("tokenize", help="split text into tokens and ids",
                       description="Show the tokens and ids of a text. TEXT, -f FILE, or text piped on stdin.")
    t.add_argument("text", nargs="?", metavar="TEXT", help="the text to tokenize")
    t.add_argument("-f", "--file", help="read the text from FILE (exactly, byte for byte; '-' for stdin)")
    t.add_argument("--tokenizer", "-t", action="append", metavar="NAME|PATH",
                   help="smollm2 (default), minilm, whitespace, word, char, or a path "
                        "(.gguf, tokenizer.json, vocab.txt, or a folder we saved); with --compare, adds to the list")
    t.add_argument("--compare", action="store_true", help="every named tokenizer side by side with its token count")
    encoding_option(t, "FILE")
    t.add_argument("--format", choices=["text", "json"], default="text")
    t.add_argument("--no-special", action="store_true",
                   help="treat special-token strings such as <|im_end|> or [SEP] as plain text")
    t.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                   help="colour the token boundaries (auto: on a terminal, unless NO_COLOR is set)")
    t.set_defaults(func=cmd_tokenize)

    tk = sub.add_parser("tokenizer", help="train or list tokenizers")
    tsub = tk.add_subparsers(dest="action", metavar="ACTION")
    tsub.required = True
    tr = tsub.add_parser("train", help="train a byte-level BPE tokenizer on text files",
                         description="Train byte-level BPE and save DIR/tokenizer.json. Text is first cut into "
                                     "pieces by GPT-2's pre-tokenization rules (default) or SmolLM2's "
                                     "(--pretokenizer smollm); merges never cross a piece.")
    tr.add_argument("files", nargs="+", metavar="FILE", help="UTF-8 text files")
    tr.add_argument("--vocab-size", type=_count, required=True, metavar="N",
                    help="target vocabulary size, special tokens included (at least 256 + the special tokens)")
    tr.add_argument("--out", type=_out_folder_path, required=True, metavar="DIR",
                    help="folder to write tokenizer.json into")
    tr.add_argument("--min-frequency", type=_count, default=2, metavar="N",
                    help="stop when the best pair occurs fewer than N times (default 2)")
    tr.add_argument("--special-token", action="append", metavar="TOKEN",
                    help="reserve a special token (repeatable; default <|endoftext|>)")
    tr.add_argument("--pretokenizer", choices=["gpt2", "smollm"], default="gpt2",
                    help="gpt2 (default) or smollm (every digit its own piece)")
    tr.add_argument("--errors", choices=["strict", "replace"], default="strict",
                    help="invalid UTF-8 in the files: stop with an error (default) or replace with U+FFFD")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--format", choices=["text", "json"], default="text")
    tr.set_defaults(func=cmd_tokenizer_train)
    ls = tsub.add_parser("list", help="the named tokenizers")
    ls.add_argument("--format", choices=["text", "json"], default="text")
    ls.set_defaults(func=cmd_tokenizer_list)

    def generation_options(sp, max_new_tokens, temperature, precision, repetition_penalty=1.0, top_p=None,
                           room="what the context window leaves after the prompt"):
        sp.add_argument("--model", "-m", default="smollm2", metavar="NAME|PATH", help=DECODER_HELP)
        sp.add_argument("--adapter", metavar="DIR", help="a LoRA adapter folder (`llmlab finetune sft --lora`) "
                        "to merge into the model before generating")
        sp.add_argument("--max-new-tokens", type=_count, metavar="N",
                        help=f"the most tokens to generate (default {max_new_tokens}, or {room} when that is less)")
        sp.set_defaults(default_new_tokens=max_new_tokens)
        sp.add_argument("--temperature", type=_nonnegative, default=temperature, metavar="T",
                        help=f"sampling temperature, 0 = greedy (default {temperature:g})")
        sp.add_argument("--top-k", type=_count, metavar="K", help="sample only from the K most likely tokens")
        sp.add_argument("--top-p", type=_ranged(float, 0, 1, low_open=True), default=top_p, metavar="P",
                        help="sample from the smallest set with probability P "
                             f"(default {'1: off' if top_p is None else f'{top_p:g}'})")
        sp.add_argument("--seed", type=_seed, metavar="S", help="seed for sampling: same seed, same text")
        sp.add_argument("--stop", action="append", metavar="TEXT", help="stop before this text (repeatable)")
        sp.add_argument("--repetition-penalty", type=_positive, default=repetition_penalty, metavar="R",
                        help="> 1 makes tokens the answer has just used less likely, against loops "
                             f"(CTRL's penalty; default {repetition_penalty:g}, 1 = off)")
        sp.add_argument("--repetition-window", type=_whole, default=64, metavar="N",
                        help="the penalty reads the answer's last N tokens (default 64; 0 = all of it)")
        sp.add_argument("--precision", choices=["fp32", "int8", "int4"], default=precision, help=PRECISION_HELP)

    c = sub.add_parser("complete", help="continue a prompt with a generative model",
                       description="Continue PROMPT (or -f FILE, or stdin). Streams text; "
                                   "--format json prints {model, prompt_tokens, ids, text, finish_reason}.")
    c.add_argument("text", nargs="?", metavar="PROMPT")
    c.add_argument("-f", "--file", help="read the prompt from FILE ('-' for stdin)")
    encoding_option(c, "FILE")
    generation_options(c, 128, 0.0, "fp32")
    c.add_argument("--format", choices=["text", "json"], default="text")
    c.set_defaults(func=cmd_complete)

    ch = sub.add_parser("chat", help="chat with a model (streaming; /reset, /system, /exit)",
                        description="Interactive chat. When stdin is not a terminal, every line is one user "
                                    "message and each answer is printed on its own line(s).")
    ch.add_argument("--system", metavar="TEXT", help="system prompt (default: the model's own; \"\" for none "
                    "at all)")
    ch.add_argument("--preset", metavar="NAME", help="a named system prompt, e.g. chef (suggest dishes from "
                    "ingredients); see --list-presets")
    ch.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    ch.add_argument("--index", metavar="DIR", help="answer every message from this search index, citing the "
                    "passages (as `llmlab ask`)")
    ch.add_argument("-k", type=_count, default=3, help="with --index: how many passages the model reads per "
                    "message (default 3; more are cut shorter to fit the prompt)")
    ch.add_argument("--format", choices=["text", "json"], default="text",
                    help="json: one object per answered message ({user, assistant, prompt_tokens, ...}); "
                         "with --list-presets, a list of {name, prompt}")
    generation_options(ch, 512, 0.2, "int4", 1.1, 0.9,  # 1.1: loops 9.1% -> 1.8% in bench/chat.py, ROUGE-L no lower
                       room="half the model's context window")
    ch.set_defaults(func=cmd_chat)

    e = sub.add_parser("embed", help="sentence embeddings as JSON Lines, one array per input line")
    e.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed (or -f FILE, or stdin)")
    e.add_argument("-f", "--file", help="one text per line ('-' for stdin)")
    encoding_option(e, "FILE")
    e.add_argument("--model", "-m", default="minilm", metavar="NAME|PATH", help=ENCODER_HELP)
    e.add_argument("--batch-size", type=_count, default=32, metavar="N",
                   help="texts per forward pass (default %(default)s)")
    e.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                   help="fp32 (default); bf16 / auto: several times faster on CPUs with AMX, cosine >= 0.999 to fp32")
    e.add_argument("--format", choices=["json", "text"], default="json",
                   help="json (default): one JSON array per line; text: space-separated numbers")
    e.set_defaults(func=cmd_embed)

    sm = sub.add_parser("similarity", help="cosine similarity matrix of texts")
    sm.add_argument("texts", nargs="+", metavar="TEXT")
    sm.add_argument("--model", "-m", default="minilm", metavar="NAME|PATH", help=ENCODER_HELP)
    sm.add_argument("--format", choices=["text", "json"], default="text")
    sm.set_defaults(func=cmd_similarity)

    cl = sub.add_parser("classify", help="label the texts of a CSV file (trained, zero-shot or generative)",
                        description="Predict a label for every row of FILE.csv. With --label-column, also "
                                    "prints accuracy, macro-F1 and a per-class table.")
    cl.add_argument("file", metavar="FILE.csv")
    cl.add_argument("--text-column", required=True, metavar="COL")
    cl.add_argument("--label-column", metavar="COL", help="true labels (in FILE and in --train)")
    cl.add_argument("--labels", metavar="a,b,...", help="allowed labels, optionally with descriptions (which may "
                    "contain commas): '0=A negative movie review,1=A positive movie review'")
    cl.add_argument("--method", choices=["hybrid", "embeddings", "bow", "zero-shot", "generative", "ensemble"],
                    default="hybrid",
                    help="hybrid (default): MiniLM embeddings + TF-IDF n-grams with a logistic-regression head "
                         "trained on --train; embeddings / bow: either alone; zero-shot: similarity to label "
                         "descriptions; generative: SmolLM2 scores each label; ensemble: the mean of hybrid's and "
                         "a fine-tuned --model's probabilities")
    cl.add_argument("--train", metavar="TRAIN.csv", help="labelled examples for the hybrid, embeddings, bow and "
                    "ensemble methods")
    cl.add_argument("--model", metavar="DIR", action="append",
                    help="a fine-tuned classifier folder (`llmlab finetune classify`); predicts with it instead of "
                    "--method, or with --method ensemble averages it with hybrid. Repeat to average several "
                    "(e.g. the same task trained with --seed 0, 1, 2)")
    cl.add_argument("--question", metavar="TEXT", help="what the generative method asks the model, e.g. "
                    "'Is the sentiment of this movie review positive or negative?'")
    cl.add_argument("--out", metavar="PRED.csv", type=_out_file, help="write the input's columns plus "
                    "predicted_label and confidence (with a suffix _2 where the file has those) and "
                    "PRED.confusion.png when true labels are known")
    encoding_option(cl, "FILE and TRAIN")
    delimiter_option(cl, "FILE, TRAIN and PRED")
    cl.add_argument("--train-delimiter", type=_delimiter, metavar="CHAR",
                    help="the field separator of TRAIN when it is not FILE's (default: --delimiter, or a tab for a "
                         ".tsv TRAIN, else a comma)")
    cl.add_argument("--quiet", action="store_true", help="no progress bars")
    cl.add_argument("--format", choices=["text", "json"], default="text")
    cl.set_defaults(func=cmd_classify)

    tp = sub.add_parser("topics", help="find the common topics (issues) in the texts of a CSV file",
                        description="Group the rows of FILE.csv by topic: MiniLM embeddings, UMAP, HDBSCAN, "
                                    "c-TF-IDF keywords. Prints the topics by size with keywords and "
                                    "representative texts.")
    tp.add_argument("file", metavar="FILE.csv")
    tp.add_argument("--text-column", required=True, metavar="COL")
    tp.add_argument("--min-topic-size", type=_ranged(int, 2), metavar="N",
                    help="fewest texts in a topic, at least 2 (default: 0.5%% of the texts, at least 10)")
    tp.add_argument("--label-with-llm", action="store_true", help="name each topic with SmolLM2 (slower)")
    tp.add_argument("--seed", type=_seed, default=0, help="seed for UMAP (same seed, same topics; default 0)")
    tp.add_argument("--out", metavar="DIR", type=_out_folder, help="write DIR/assignments.csv (the input's "
                    "columns plus topic and topic_name, or topic_2 and topic_name_2 where the file has those), "
                    "DIR/topics.csv, DIR/topics_map.png and DIR/report.md")
    encoding_option(tp, "FILE")
    delimiter_option(tp, "FILE and the CSV files written to DIR")
    tp.add_argument("--quiet", action="store_true", help="no progress bars")
    tp.add_argument("--format", choices=["text", "json"], default="text")
    tp.set_defaults(func=cmd_topics)

    ix = sub.add_parser("index", help="build or update a search index over .txt / .md / .html / .pdf / .docx files",
                        description="Chunk files by tokens, embed with MiniLM and index for BM25, in DIR/index.sqlite. "
                                    "Unchanged files are kept as they are on later runs; files gone from a folder "
                                    "given (deleted, renamed, no longer readable) are taken out of the index.")
    ix.add_argument("paths", nargs="+", metavar="PATH",
                    help="files or folders (searched for .txt, .md, .html, .pdf and .docx; unreadable files found in "
                         "folders are skipped with a notice)")
    ix.add_argument("--index", required=True, metavar="DIR")
    ix.add_argument("--chunk-tokens", type=_count, default=None, metavar="N",
                    help="tokens per chunk, at most 512, what MiniLM reads (default: the index's own; 200 for a new "
                         "one)")
    ix.add_argument("--overlap", type=_whole, default=None, metavar="N",
                    help="tokens shared by consecutive chunks, fewer than --chunk-tokens (default: the index's own; "
                         "40 for a new one)")
    ix.add_argument("--prune", action="store_true",
                    help="also take out indexed files that are no longer on disk anywhere (a folder moved or deleted "
                         "since); files gone from the folders given are always taken out")
    ix.add_argument("--rebuild", action="store_true",
                    help="build the index anew from PATHs (to change --chunk-tokens, or after damage); the old one "
                         "stays searchable until the new one is complete")
    encoding_option(ix, "the .txt / .md / .html files (PDF and Word files carry their own)")
    ix.add_argument("--quiet", action="store_true", help="no progress bar")
    ix.add_argument("--format", choices=["text", "json"], default="text")
    ix.set_defaults(func=cmd_index)

    se = sub.add_parser("search", help="ranked passages for a query from an index")
    se.add_argument("query", nargs="?", metavar="QUERY")
    se.add_argument("--index", required=True, metavar="DIR")
    se.add_argument("-k", type=_count, default=5, help="how many passages (default 5)")
    se.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid", help=SEARCH_MODE_HELP)
    se.add_argument("--queries", metavar="FILE", help="a text file of queries, one per line (with --format json, "
                    "one result object per line)")
    encoding_option(se, "the --queries FILE")
    se.add_argument("--format", choices=["text", "json"], default="text")
    se.set_defaults(func=cmd_search)

    ak = sub.add_parser("ask", help="answer a question from an index, citing the passages",
                        description="Retrieve the top passages for QUESTION from an index, let SmolLM2 answer "
                                    "from them alone, and print the answer with its numbered sources. When no "
                                    "passage is relevant, says so without asking the model.")
    ak.add_argument("question", metavar="QUESTION")
    ak.add_argument("--index", required=True, metavar="DIR")
    ak.add_argument("-k", type=_count, default=3, help="how many passages the model reads (default 3)")
    ak.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid",
                    help="how passages are found: " + SEARCH_MODE_HELP)
    ak.add_argument("--model", "-m", default="smollm2", metavar="NAME|PATH", help=DECODER_HELP)
    ak.add_argument("--precision", choices=["fp32", "int8", "int4"], default="int4", help=PRECISION_HELP)
    ak.add_argument("--max-new-tokens", type=_count, default=160, metavar="N",
                    help="the longest answer in tokens (default %(default)s)")
    ak.add_argument("--format", choices=["text", "json"], default="text")
    ak.set_defaults(func=cmd_ask)

    ins = sub.add_parser("inspect", help="summarise a document, answer questions on it with quotes",
                         description="Read DOC (.txt, .md, .html, .pdf, .docx). --summary (the default): a map-reduce "
                                     "summary by SmolLM2 plus the most central sentences; --ask / --checklist: "
                                     "answers from the document, each with a verbatim quote.")
    ins.add_argument("document", metavar="DOC")
    ins.add_argument("--summary", action="store_true", help="summarise (the default when nothing else is asked)")
    ins.add_argument("--ask", action="append", metavar="QUESTION", help="a question on the document (repeatable)")
    ins.add_argument("--checklist", metavar="FILE", help="checklist items, one per line: each gets yes / no / "
                     "unclear / not found and a quote")
    ins.add_argument("--sentences", type=_count, default=5, metavar="N", help="central sentences to show (default 5)")
    encoding_option(ins, "DOC (unless a PDF or Word file) and the checklist")
    ins.add_argument("--model", "-m", default="smollm2", metavar="NAME|PATH", help=DECODER_HELP)
    ins.add_argument("--precision", choices=["fp32", "int8", "int4"], default="int4", help=PRECISION_HELP)
    ins.add_argument("--quiet", action="store_true", help="no progress bars")
    ins.add_argument("--format", choices=["text", "json"], default="text")
    ins.set_defaults(func=cmd_inspect)

    w2v = sub.add_parser("word2vec", help="train word2vec vectors and query or evaluate them")
    wsub = w2v.add_subparsers(dest="action", metavar="ACTION")
    wsub.required = True
    wt = wsub.add_parser("train", help="train skip-gram or CBOW vectors on text files",
                         description="Train word2vec (negative sampling) on .txt files and .zip files of "
                                     "POS-tagged texts (Brown). Writes DIR/vectors.bin (word2vec binary) "
                                     "and DIR/word2vec.json (settings, vocabulary counts, figures).")
    wt.add_argument("files", nargs="+", metavar="FILE", help="text files (.txt; paragraphs are sentences), zips of "
                    "tagged texts (one sentence per line), or folders holding them")
    wt.add_argument("--out", type=_out_folder_path, required=True, metavar="DIR")
    arch = wt.add_mutually_exclusive_group()
    arch.add_argument("--sg", action="store_true", help="skip-gram (the default)")
    arch.add_argument("--cbow", action="store_true", help="continuous bag of words")
    wt.add_argument("--dim", type=_count, default=100, metavar="N", help="vector size (default %(default)s)")
    wt.add_argument("--window", type=_count, default=5, metavar="N",
                    help="largest distance to a context word; each position draws 1..N (default %(default)s)")
    wt.add_argument("--negative", type=_count, default=5, metavar="N",
                    help="noise words per true word (default %(default)s)")
    wt.add_argument("--epochs", type=_count, default=5, metavar="N",
                    help="passes over the corpus (default %(default)s)")
    wt.add_argument("--min-count", type=_count, default=5, metavar="N",
                    help="drop words seen fewer than N times (default %(default)s)")
    wt.add_argument("--sample", type=_nonnegative, default=1e-3, metavar="T",
                    help="sub-sampling threshold (0: off; default 1e-3)")
    wt.add_argument("--threads", type=_threads, default=1, metavar="N", help="worker threads (default %(default)s)")
    wt.add_argument("--seed", type=_seed, default=1, metavar="N",
                    help="seed for everything random (default %(default)s)")
    wt.add_argument("--quiet", action="store_true", help="no progress bar")
    wt.add_argument("--format", choices=["text", "json"], default="text")
    wt.set_defaults(func=cmd_word2vec_train)
    ws = wsub.add_parser("similar", help="nearest words by cosine")
    ws.add_argument("word", metavar="WORD")
    ws.add_argument("-n", type=_count, default=10, help="how many (default 10)")
    ws.add_argument("--vectors", required=True, metavar="DIR|FILE", help="a trained folder or a .bin/.txt file")
    ws.add_argument("--format", choices=["text", "json"], default="text")
    ws.set_defaults(func=cmd_word2vec_similar)
    wa = wsub.add_parser("analogy", help="A is to B as C is to ?")
    wa.add_argument("a", metavar="A", help="A is to B as C is to ? (three words)")
    wa.add_argument("b", metavar="B")
    wa.add_argument("c", metavar="C")
    wa.add_argument("-n", type=_count, default=5, help="how many answers (default 5)")
    wa.add_argument("--method", choices=["add", "mul"], default="add", help="3CosAdd (default) or 3CosMul")
    wa.add_argument("--vectors", required=True, metavar="DIR|FILE")
    wa.add_argument("--format", choices=["text", "json"], default="text")
    wa.set_defaults(func=cmd_word2vec_analogy)
    we = wsub.add_parser("eval", help="analogy accuracy, WordSim-353 and SimLex-999",
                         description="Evaluate on questions-words.txt, wordsim353.tsv and simlex999.txt from "
                                     "--data (gensim's rules); --report DIR also writes DIR/report.md with the "
                                     "primer's examples.")
    we.add_argument("--vectors", required=True, metavar="DIR|FILE")
    we.add_argument("--data", type=Path, metavar="DIR", help="folder with the three files (default: "
                    "../shared/data/word_eval beside the repository, when present)")
    we.add_argument("--restrict-vocab", type=_count, default=30_000, metavar="N",
                    help="analogy answers among the N most frequent words (default 30000)")
    we.add_argument("--report", type=_out_folder_path, metavar="DIR")
    we.add_argument("--format", choices=["text", "json"], default="text")
    we.set_defaults(func=cmd_word2vec_eval)
    _add_train_parsers(sub)
    ft = sub.add_parser("finetune", help="fine-tune a model: instructions/chats (SFT, LoRA) or a classifier")
    fsub = ft.add_subparsers(dest="action", metavar="ACTION")
    fsub.required = True
    fs = fsub.add_parser("sft", help="supervised fine-tuning on instructions or chats (JSON / JSONL)",
                         description="Fine-tune a decoder on DATA: records with instruction/input/output fields or "
                                     "a messages list, rendered with the model's chat template; only the "
                                     "assistant's answers are trained on. Writes a LoRA adapter folder (--lora) or "
                                     "a model folder.")
    fs.add_argument("data", metavar="DATA", help=".json (a list) or .jsonl file")
    fs.add_argument("--model", "-m", default="smollm2", metavar="NAME|PATH", help="base model (default smollm2)")
    fs.add_argument("--out", type=_out_folder_path, required=True, metavar="DIR")
    fs.add_argument("--lora", action="store_true", help="train low-rank adapters instead of every weight")
    fs.add_argument("--rank", type=_count, default=8, metavar="R", help="LoRA rank r (default 8)")
    fs.add_argument("--alpha", type=_positive, default=16.0, metavar="A",
                    help="LoRA scale numerator: updates are alpha/r B A (default 16)")
    fs.add_argument("--dropout", type=_share, default=0.05, metavar="P",
                    help="dropout probability on the LoRA path's input, in [0, 1) (default 0.05)")
    fs.add_argument("--targets", default="q_proj,v_proj", metavar="NAMES",
                    help="layers to adapt, comma-separated (default q_proj,v_proj)")
    fs.add_argument("--merge", action="store_true", help="with --lora: fold the adapters in and save a full model")
    fs.add_argument("--epochs", type=_positive, default=1.0, metavar="E",
                    help="passes over the data, fractions allowed (default 1)")
    fs.add_argument("--lr", type=_positive, help="peak learning rate (default 2e-4 with --lora, 2e-5 without)")
    fs.add_argument("--batch-size", type=_count, default=8, metavar="N", help="records per micro-batch (default 8)")
    fs.add_argument("--grad-accum", type=_count, default=1, metavar="N",
                    help="micro-batches per optimiser step (default 1)")
    fs.add_argument("--max-steps", type=_count, metavar="N", help="stop after N optimiser steps")
    fs.add_argument("--val-fraction", type=_share, default=0.1, metavar="F",
                    help="share of the records held out for validation loss, in [0, 1) (default 0.1)")
    fs.add_argument("--max-len", type=_ranged(int, 2), metavar="N",
                    help="token limit per record (default: the context)")
    fs.add_argument("--truncate", action="store_true", help="cut records longer than the limit instead of "
                    "stopping with an error (the count is reported)")
    fs.add_argument("--seed", type=_seed, default=0, metavar="N", help="default 0")
    fs.add_argument("--quiet", action="store_true", help="no progress bar or log")
    fs.add_argument("--format", choices=["text", "json"], default="text")
    fs.set_defaults(func=cmd_finetune_sft)
    fc = fsub.add_parser("classify", help="train a classification head on an encoder or decoder",
                         description="Fine-tune MiniLM (mean-pooled) or a decoder (last token) with a linear head "
                                     "on the labelled rows of TRAIN.csv; predict with "
                                     "`llmlab classify FILE.csv --model DIR`.")
    fc.add_argument("train", metavar="TRAIN.csv")
    fc.add_argument("--text-column", required=True, metavar="COL")
    fc.add_argument("--label-column", required=True, metavar="COL")
    fc.add_argument("--model", "-m", default="minilm", metavar="NAME|PATH", help="minilm (default), smollm2 or a path")
    fc.add_argument("--out", type=_out_folder_path, required=True, metavar="DIR")
    fc.add_argument("--freeze", action="store_true", help="train the head only, on a frozen body")
    fc.add_argument("--epochs", type=_positive, default=3.0, metavar="E",
                    help="passes over the data, fractions allowed (default 3)")
    fc.add_argument("--lr", type=_positive, help="learning rate of the body (default 5e-5; head 10x), "
                    "or of the head with --freeze (default 1e-3)")
    fc.add_argument("--batch-size", type=_count, default=32, metavar="N", help="texts per step (default 32)")
    fc.add_argument("--label-smoothing", type=_share, default=0.0, metavar="S",
                    help="spread this share of each target over all labels (e.g. 0.1; default 0)")
    fc.add_argument("--layer-decay", type=_ranged(float, 0, 1, low_open=True), default=1.0, metavar="D",
                    help="layer-wise lr decay: block i of L learns at lr * D^(L-i) (e.g. 0.8; default 1: one lr)")
    fc.add_argument("--max-len", type=_ranged(int, 2), default=128, metavar="N",
                    help="tokens per text; longer texts are cut (default 128)")
    fc.add_argument("--seed", type=_seed, default=0, metavar="N", help="default 0")
    encoding_option(fc, "TRAIN")
    delimiter_option(fc, "TRAIN")
    fc.add_argument("--quiet", action="store_true", help="no progress bar")
    fc.add_argument("--format", choices=["text", "json"], default="text")
    fc.set_defaults(func=cmd_finetune_classify)
    _experiment_parser(sub)
    return p


_interrupts = []  # the SIGINTs received, even those a library caught and ignored


def _on_interrupt(signum, frame):
    _interrupts.append(signum)
    raise KeyboardInterrupt


def _raise_if_interrupted() -> None:
    if _interrupts:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is \
            signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)
    _interrupts.clear()
    try:
        return args.func(args)
    except EncodingError as e:
        hint = ""
        if getattr(args, "encoding", False) is None:  # the command takes --encoding and was not given one
            hint = f" or name its encoding: --encoding {e.suggestion or 'NAME (e.g. cp1252, latin-1, gbk)'}"
        elif getattr(args, "errors", None) == "strict":  # a training corpus: a few bad bytes can be replaced
            hint = ", or read bad bytes as U+FFFD with --errors replace"
        print(f"llmlab: error: {e}{hint}", file=sys.stderr)
        return 2
    except LlmlabError as e:
        print(f"llmlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `llmlab tokenize ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # the system refused: a full disk under stdout, a file that vanished, ...
        print(f"llmlab: error: {f'{e.filename}: ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
