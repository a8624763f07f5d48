"""minilib.tokenizer: byte-level BPE, special tokens, chat template, HF parity, stage cache."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minilib import tokenizer as T
from minilib.checks import ch01

CORPUS = [
    "Tom has a red ball. Lily went to the park with her blue cup. They were happy.",
    "One sunny day, Mia found three shells on the beach. She gave two to Leo.",
    "What is 7 + 5? The answer is 12. How many apples are left? There are four.",
    "Café, naïve, Über, 東京, and an emoji 🙂 — unusual text still has to round-trip.",
] * 20

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What colour is Tom's ball?"},
    {"role": "assistant", "content": "It is red."},
    {"role": "user", "content": "<|image|>\nHow many shapes?"},
    {"role": "assistant", "content": " Three.\n\n"},  # leading space and trailing newlines
]


@pytest.fixture(scope="module")
def tok():
    return T.train_tokenizer(CORPUS, vocab_size=400)


@pytest.fixture(scope="module")
def hf(tok, tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    d = tok.save(tmp_path_factory.mktemp("tok"))
    return transformers.AutoTokenizer.from_pretrained(str(d))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_round_trip_any_unicode(tok, text):
    """decode(encode(s)) == s for every Unicode string, specials kept and bos removed cleanly."""
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, add_bos=True), skip_special_tokens=True) == \
        tok.decode(tok.encode(text), skip_special_tokens=True)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.text(max_size=20), st.sampled_from(T.SPECIALS)), max_size=8))
def test_round_trip_with_special_tokens_in_text(tok, parts):
    """Special-token strings inside text become their ids (as in HF) and still round-trip."""
    text = "".join(parts)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    for s in T.SPECIALS:
        if s in parts:
            assert tok.special_ids[s] in ids


def test_special_token_ids_and_layout(tok):
    """Specials take ids 0..7 in SPECIALS order, then the 256 bytes; vocab within the request."""
    assert [tok.special_ids[s] for s in T.SPECIALS] == list(range(len(T.SPECIALS)))
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.eot_id, tok.image_id) == (0, 1, 2, 6, 7)
    assert tok.role_ids == {"system": 3, "user": 4, "assistant": 5}
    assert T.MIN_VOCAB_SIZE < tok.vocab_size <= 400
    assert tok.encode("<|image|><|image|>") == [tok.image_id] * 2
    assert tok.encode("hi", add_bos=True)[0] == tok.bos_id
    assert b"".join(tok.token_bytes(i) for i in tok.encode("héllo 🙂")) == "héllo 🙂".encode()


def test_encode_batch_matches_encode(tok):
    """encode_batch (parallel, in Rust) gives exactly the ids of encode on each text."""
    texts = CORPUS[:4] + ["", "<|user|>\nhi<|end|>"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts, add_bos=True) == [tok.encode(t, add_bos=True) for t in texts]


def test_training_is_deterministic():
    """The same corpus and vocab size give byte-identical tokenizers."""
    a = T.train_tokenizer(CORPUS, vocab_size=350)
    b = T.train_tokenizer(iter(CORPUS), vocab_size=350)  # a generator works too
    assert a._tk.to_str() == b._tk.to_str()


def test_bpe_compresses(tok):
    """Merges pay off: training text takes fewer tokens than bytes (> 2 bytes/token here)."""
    assert T.bytes_per_token(tok, CORPUS[:4]) > 2.0


def test_vocab_too_small_raises():
    """vocab_size below 256 bytes + specials is a ValueError naming the limit and the value."""
    with pytest.raises(ValueError, match=r"vocab_size must be at least 264.*got 100"):
        T.train_tokenizer(CORPUS, vocab_size=100)


@pytest.mark.parametrize("corpus", [[], [""], ["", ""], iter([])])
def test_empty_corpus_raises(corpus):
    """Training on no text (no strings, or only empty ones) is a ValueError."""
    with pytest.raises(ValueError, match="empty corpus"):
        T.train_tokenizer(corpus, vocab_size=300)


def test_bad_inputs_raise(tok):
    """A bare string as corpus, non-str texts and out-of-range ids fail with clear errors."""
    with pytest.raises(TypeError, match="not a single string"):
        T.train_tokenizer("just one string", vocab_size=300)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        T.train_tokenizer(["ok", 3], vocab_size=300)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([1, tok.vocab_size])


def test_chat_template_exact_string(tok):
    """The template renders role token, newline, content, <|end|>, newline per message."""
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == (
        "<|bos|><|system|>\nBe brief.<|end|>\n<|user|>\n2+2?<|end|>\n<|assistant|>\n4<|end|>\n")
    assert tok.apply_chat_template(msgs[1:2], add_generation_prompt=True, tokenize=False) == \
        "<|bos|><|user|>\n2+2?<|end|>\n<|assistant|>\n"
    assert tok.apply_chat_template(msgs[1:2], tokenize=False, add_bos=False) == \
        "<|user|>\n2+2?<|end|>\n"
    assert tok.apply_chat_template(msgs) == tok.encode(tok.apply_chat_template(msgs, tokenize=False))


def test_chat_validation(tok):
    """An empty conversation and an unknown role (named in the message) are ValueErrors."""
    with pytest.raises(ValueError, match="empty"):
        tok.encode_chat([])
    with pytest.raises(ValueError, match="'robot'"):
        tok.encode_chat([{"role": "robot", "content": "beep"}])
    with pytest.raises(ValueError, match="'robot'"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="'role' and 'content'"):
        tok.encode_chat([{"role": "user"}])


@pytest.mark.parametrize("gen", [False, True])
def test_encode_chat_mask(tok, gen):
    """ids equal apply_chat_template; the mask is 1 exactly on assistant content + its <|end|>."""
    ids, mask = tok.encode_chat(CONVERSATION, add_generation_prompt=gen)
    assert ids == tok.apply_chat_template(CONVERSATION, add_generation_prompt=gen)
    assert len(mask) == len(ids) and set(mask) <= {0, 1}
    # Rebuild the masked text: the assistant contents, each followed by <|end|>, in order.
    kept = tok.decode([i for i, m in zip(ids, mask) if m])
    assert kept == "".join(m["content"] + "<|end|>" for m in CONVERSATION
                           if m["role"] == "assistant")
    # Every masked run ends on <|end|>, and no role token or bos is ever masked.
    for i, m in enumerate(mask):
        if m and (i + 1 == len(mask) or not mask[i + 1]):
            assert ids[i] == tok.eot_id
        if ids[i] in (tok.bos_id, *tok.role_ids.values()):
            assert m == 0
    if gen:
        assert ids[-2:] == tok.encode("<|assistant|>\n") and mask[-2:] == [0, 0]


def test_encode_chat_no_assistant(tok):
    """A conversation without assistant turns has an all-zero mask."""
    ids, mask = tok.encode_chat(CONVERSATION[:2], add_generation_prompt=True)
    assert len(ids) == len(mask) and not any(mask)


def test_save_load_identity(tok, tmp_path):
    """load(save(tok)) gives the same vocabulary, ids and config; files are what HF expects."""
    tok.save(tmp_path)
    again = T.Tokenizer.load(tmp_path)
    assert again._tk.to_str() == tok._tk.to_str()
    assert again.vocab_size == tok.vocab_size and again.special_ids == tok.special_ids
    text = "Mia found three shells. <|image|> 🙂"
    assert again.encode(text) == tok.encode(text)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["chat_template"] == T.CHAT_TEMPLATE
    assert config["model_max_length"] == T.MODEL_MAX_LENGTH
    assert not list(tmp_path.glob(".*.tmp")), "atomic writes left a temporary file"


def test_load_missing_dir_names_it(tmp_path):
    """Loading from a directory without tokenizer.json is a FileNotFoundError naming it."""
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        T.Tokenizer.load(missing)


def test_autotokenizer_parity_text(tok, hf):
    """transformers' AutoTokenizer on the saved files gives the same ids and decodes back."""
    for text in CORPUS[:4] + ["", "  leading spaces\n\n", "<|bos|>x<|end|>", "🙂" * 3]:
        assert hf(text)["input_ids"] == tok.encode(text)
        assert hf.decode(tok.encode(text)) == text
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
    assert hf.convert_tokens_to_ids("<|image|>") == tok.image_id


@pytest.mark.parametrize("gen", [False, True])
def test_autotokenizer_parity_chat(tok, hf, gen):
    """HF's apply_chat_template (string and ids) equals ours on a multi-turn conversation."""
    assert hf.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=gen) == \
        tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=gen)
    out = hf.apply_chat_template(CONVERSATION, tokenize=True, add_generation_prompt=gen)
    hf_ids = out["input_ids"] if hasattr(out, "keys") else out
    assert list(hf_ids) == tok.apply_chat_template(CONVERSATION, add_generation_prompt=gen)


def test_to_hf_matches(tok):
    """to_hf() builds an equivalent transformers tokenizer without touching the disk."""
    pytest.importorskip("transformers")
    h = tok.to_hf()
    text = tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert h.encode(text) == tok.encode(text)
    assert h.apply_chat_template(CONVERSATION, tokenize=False) == text


def test_get_tokenizer_stage_cache(tmp_path, monkeypatch):
    """get_tokenizer trains once into runs/<run>/tokenizer/, records a summary, then reloads."""
    monkeypatch.setenv("MINILIB_RUNS", str(tmp_path))
    calls = []

    def tiny_corpus():
        calls.append(1)
        return CORPUS, CORPUS[:4]

    monkeypatch.setattr(T, "_world_corpus", tiny_corpus)
    monkeypatch.setattr(T, "_world_fingerprint", lambda: "test-world")
    a = T.get_tokenizer("t", vocab_size=300)
    summary = json.loads((tmp_path / "t" / "tokenizer" / "stage.json").read_text())["summary"]
    assert summary["vocab_size"] == a.vocab_size and summary["bytes_per_token_val"] > 1
    b = T.get_tokenizer("t", vocab_size=300)
    assert len(calls) == 1 and b._tk.to_str() == a._tk.to_str()
    T.get_tokenizer("t", vocab_size=320)  # another recipe: retrained
    assert len(calls) == 2
    monkeypatch.setattr(T, "_world_fingerprint", lambda: "a changed world")
    T.get_tokenizer("t", vocab_size=320)  # the data generator changed: retrained
    assert len(calls) == 3


# ----------------------------------------------------------------------------- chapter 01 checks


def _sequential_encode(text, merges):  # wrong: applies merges in dict order, not by rank
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = ch01.reference_merge(ids, pair, new_id)
    return ids


def _first_only_merge(ids, pair, new_id):  # wrong: merges only the first occurrence
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


def _stub(*args):
    raise NotImplementedError("Exercise: write this part")


def test_check_merge_verdicts(capsys):
    """check_merge accepts the reference, rejects a wrong merge, and spots a stub."""
    assert ch01.check_merge(ch01.reference_merge).status == "passed"
    assert ch01.check_merge(_first_only_merge).status == "failed"
    assert "failed" in capsys.readouterr().out
    assert ch01.check_merge(_stub).status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_check_encode_verdicts(capsys):
    """check_encode accepts the reference, rejects dict-order merging, and spots a stub."""
    assert ch01.check_encode(ch01.reference_encode).status == "passed"
    assert ch01.check_encode(_sequential_encode).status == "failed"
    assert "failed" in capsys.readouterr().out
    assert ch01.check_encode(_stub).status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_reference_bpe_round_trip():
    """The chapter's reference BPE compresses its training text and decodes back exactly."""
    text = ch01._TRAIN_TEXT
    merges = ch01.reference_train(text, 40)
    ids = ch01.reference_encode(text, merges)
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new in sorted(merges.items(), key=lambda kv: kv[1]):
        vocab[new] = vocab[a] + vocab[b]
    assert b"".join(vocab[i] for i in ids).decode() == text
    assert len(ids) < len(text.encode()) / 2
