"""The course tokenizer: a byte-level BPE with special tokens and a chat template.

Byte-pair encoding (Sennrich et al., 2016, "Neural Machine Translation of Rare Words with
Subword Units", https://arxiv.org/abs/1508.07909) starts from single symbols and repeatedly
merges the most frequent adjacent pair into a new symbol. The byte-level variant of GPT-2
(Radford et al., 2019, "Language Models are Unsupervised Multitask Learners") starts from the
256 byte values, so every Unicode string can be encoded and no <unk> token is needed. Chapter
01 builds BPE from scratch; this module trains the same algorithm with the Rust `tokenizers`
library, which is fast enough for megabytes of text in seconds.

Design choices (and where they differ from GPT-2):
- Pre-tokenization is GPT-2's regex split (`ByteLevel(use_regex=True)`), so merges never cross
  a word/space/punctuation boundary, but with `add_prefix_space=False` and no normalizer:
  `decode(encode(s)) == s` holds exactly for every Unicode string (a property test checks it).
- Special tokens come first (ids 0..7), then the 256 byte tokens, then merges in rank order.
  Like Hugging Face tokenizers, text that spells a special token (e.g. "<|image|>" typed into
  a user message) IS that special token; this is how the multimodal chapter inserts image
  placeholders in plain text. (In a real product this lets a user forge turns by typing
  "<|assistant|>"; production systems escape or strip such strings from user input first.)
- No post-processor: `encode` adds <|bos|> only when asked, so the plain `tokenizers` and
  `transformers` encodings agree token for token.
- On a small corpus BPE runs out of pairs before `vocab_size` (the world's few thousand distinct
  words become whole tokens): `Tokenizer.vocab_size` is the size reached; size models by it.
- The chat format is a Jinja template (the Hugging Face convention), one block per turn:
      <|bos|><|system|>\\n{content}<|end|>\\n<|user|>\\n{content}<|end|>\\n<|assistant|>\\n
  `encode_chat` also returns the SFT loss mask: 1 on the assistant's content and its <|end|>.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as RustTokenizer

from .utils import atomic_write_bytes, atomic_write_json, mark_stage_done, run_dir, stage_is_current

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
SYSTEM, USER, ASSISTANT = "<|system|>", "<|user|>", "<|assistant|>"
END = "<|end|>"  # end of a chat turn: the token an assistant stops generating on
IMAGE = "<|image|>"  # one placeholder per image embedding in the multimodal model
SPECIALS = (BOS, EOS, PAD, SYSTEM, USER, ASSISTANT, END, IMAGE)
ROLES = ("system", "user", "assistant")
N_BYTES = 256
MIN_VOCAB_SIZE = N_BYTES + len(SPECIALS)
MODEL_MAX_LENGTH = 2048  # written to tokenizer_config.json; the model's context may be shorter

# Rendered with the same Jinja settings as transformers (sandboxed, trim_blocks, lstrip_blocks).
# `add_bos` (default true) is an optional template variable: apply_chat_template(..., add_bos=False).
CHAT_TEMPLATE = (
    "{%- if add_bos is not defined or add_bos %}{{ '<|bos|>' }}{% endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


# ----------------------------------------------------------------------------- training


def _empty_bpe() -> RustTokenizer:
    """An untrained byte-level BPE pipeline: GPT-2 regex split, bytes mapped to printable chars."""
    tk = RustTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    return tk


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> Tokenizer:
    """Train a byte-level BPE on `texts` (any iterable of str, consumed once).

    The vocabulary holds the specials, all 256 bytes and up to `vocab_size - 264` merges; a
    small corpus may stop with fewer merges (`Tokenizer.vocab_size` is the size actually reached).
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE} ({N_BYTES} byte tokens + "
                         f"{len(SPECIALS)} special tokens), got {vocab_size}")
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of strings (e.g. a list), not a single string")

    seen = {"texts": 0, "chars": 0}

    def counted() -> Iterator[str]:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is a {type(text).__name__}, expected str")
            seen["texts"] += 1
            seen["chars"] += len(text)
            yield text

    tk = _empty_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # special=True, normalized=False: matched verbatim in any text and skippable on decode
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in SPECIALS],
        # all 256 bytes, even those absent from the corpus, so that any string can be encoded
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(counted(), trainer=trainer)
    if seen["chars"] == 0:
        raise ValueError(f"cannot train a tokenizer on an empty corpus ({seen['texts']} texts, "
                         "0 characters)")
    return Tokenizer(tk)


# ----------------------------------------------------------------------------- chat template


@functools.lru_cache(maxsize=8)
def _compiled_template(source: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def validate_messages(messages: Sequence[Mapping]) -> None:
    """Raise ValueError/TypeError unless `messages` is a non-empty list of {role, content}."""
    if isinstance(messages, (str, Mapping)) or not isinstance(messages, Sequence):
        raise TypeError(f"messages must be a list of {{'role', 'content'}} dicts, got "
                        f"{type(messages).__name__}")
    if len(messages) == 0:
        raise ValueError("messages is empty: a conversation needs at least one message")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {m!r}")
        if m["role"] not in ROLES:
            raise ValueError(f"messages[{i}] has unknown role {m['role']!r}; "
                             f"valid roles are {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise TypeError(f"messages[{i}]['content'] must be a str, got "
                            f"{type(m['content']).__name__}")


def _assistant_spans(messages: Sequence[Mapping], add_generation_prompt: bool,
                     add_bos: bool) -> tuple[str, list[tuple[int, int]]]:
    """The rendered chat (mirroring CHAT_TEMPLATE) and the character spans of every assistant
    content + its closing <|end|>: the part of a conversation the model is trained to write."""
    parts, spans, pos = [BOS] if add_bos else [], [], len(BOS) if add_bos else 0
    for m in messages:
        head = f"<|{m['role']}|>\n"
        if m["role"] == "assistant":
            start = pos + len(head)
            spans.append((start, start + len(m["content"]) + len(END)))
        piece = head + m["content"] + END + "\n"
        parts.append(piece)
        pos += len(piece)
    if add_generation_prompt:
        parts.append(ASSISTANT + "\n")
    return "".join(parts), spans


# ----------------------------------------------------------------------------- the tokenizer


class Tokenizer:
    """A trained byte-level BPE: encode/decode text, render and encode chats, save/load.

    Wraps a `tokenizers.Tokenizer`; `to_hf()` gives the equivalent `transformers` tokenizer.
    """

    def __init__(self, tk: RustTokenizer, model_max_length: int = MODEL_MAX_LENGTH):
        self._tk = tk
        self.model_max_length = model_max_length
        ids = {}
        for s in SPECIALS:
            i = tk.token_to_id(s)
            if i is None:
                raise ValueError(f"this tokenizer has no special token {s!r}; train it with "
                                 "minilib.tokenizer.train_tokenizer")
            ids[s] = i
        self.special_ids: dict[str, int] = ids
        self.bos_id, self.eos_id, self.pad_id = ids[BOS], ids[EOS], ids[PAD]
        self.system_id, self.user_id, self.assistant_id = ids[SYSTEM], ids[USER], ids[ASSISTANT]
        self.eot_id, self.image_id = ids[END], ids[IMAGE]
        self.role_ids = {"system": self.system_id, "user": self.user_id,
                         "assistant": self.assistant_id}
        self.vocab_size: int = tk.get_vocab_size(with_added_tokens=True)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, specials={list(SPECIALS)})"

    def __len__(self) -> int:
        return self.vocab_size

    # -- text ---------------------------------------------------------------------------

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        """str -> token ids (special-token strings in `text` become their special ids)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = self._tk.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if add_bos else ids

    def encode_batch(self, texts: Sequence[str], add_bos: bool = False) -> list[list[int]]:
        """Many texts at once (parallel in Rust): the same ids as `encode` on each."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is a {type(t).__name__}, expected str")
        out = [e.ids for e in self._tk.encode_batch(texts, add_special_tokens=False)]
        return [[self.bos_id, *ids] for ids in out] if add_bos else out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Token ids (list, tuple, tensor or array) -> str; exact inverse of `encode`."""
        if hasattr(ids, "tolist"):  # torch tensor / numpy array
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if i < 0 or i >= self.vocab_size)
            raise ValueError(f"token id {bad} is outside the vocabulary [0, {self.vocab_size})")
        # tokenizers' own default skips specials; ours keeps them so decode inverts encode
        return self._tk.decode(ids, skip_special_tokens=skip_special_tokens)

    def id_to_token(self, i: int) -> str:
        """The vocabulary entry of id `i` (bytes shown as GPT-2's printable characters)."""
        return self._tk.id_to_token(int(i))

    def token_bytes(self, i: int) -> bytes:
        """The raw bytes that token `i` stands for (a special token: its UTF-8 spelling)."""
        tok = self._tk.id_to_token(int(i))
        if tok in self.special_ids:
            return tok.encode()
        return bytes(_UNICODE_TO_BYTE[c] for c in tok)

    # -- chat -----------------------------------------------------------------------------

    def apply_chat_template(self, messages: Sequence[Mapping], add_generation_prompt: bool = False,
                            tokenize: bool = True, **template_kwargs) -> list[int] | str:
        """Render a conversation with CHAT_TEMPLATE; ids (tokenize=True) or the string.

        Same result as `transformers`' `apply_chat_template` on the saved tokenizer.
        """
        validate_messages(messages)
        text = _compiled_template(CHAT_TEMPLATE).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt,
            **template_kwargs)
        return self.encode(text) if tokenize else text

    def encode_chat(self, messages: Sequence[Mapping], add_generation_prompt: bool = False,
                    add_bos: bool = True) -> tuple[list[int], list[int]]:
        """A conversation -> (ids, assistant_mask), the SFT inputs.

        ids == apply_chat_template(messages, add_generation_prompt). mask[i] == 1 exactly on
        tokens overlapping an assistant message's content or its closing <|end|> (the tokens
        the model must learn to write), 0 on system/user turns, role tokens and newlines.
        """
        text = self.apply_chat_template(messages, add_generation_prompt, tokenize=False,
                                        add_bos=add_bos)
        mirror, spans = _assistant_spans(messages, add_generation_prompt, add_bos)
        assert mirror == text, "CHAT_TEMPLATE and _assistant_spans disagree"
        enc = self._tk.encode(text, add_special_tokens=False)
        mask, k = [], 0
        for start, end in enc.offsets:  # character offsets, increasing
            while k < len(spans) and spans[k][1] <= start:
                k += 1
            inside = k < len(spans) and spans[k][0] < end and start < spans[k][1]
            mask.append(int(inside))
        return enc.ids, mask

    # -- files ----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write tokenizer.json + tokenizer_config.json (what AutoTokenizer loads), atomically."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / "tokenizer.json", self._tk.to_str(pretty=True).encode())
        atomic_write_json(d / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": EOS,
            "pad_token": PAD,
            # "additional_special_tokens": understood by transformers 4.x and 5.x alike
            "additional_special_tokens": [SYSTEM, USER, ASSISTANT, END, IMAGE],
            "chat_template": CHAT_TEMPLATE,
            "model_max_length": self.model_max_length,
            "clean_up_tokenization_spaces": False,  # keep decode exact in transformers too
        })
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Load what `save` wrote. FileNotFoundError naming the directory when it is missing."""
        d = Path(directory)
        path = d / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer in {d}: {path.name} is missing (train one with "
                                    "minilib.tokenizer.get_tokenizer or train_tokenizer)")
        config = {}
        if (d / "tokenizer_config.json").is_file():
            config = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        return cls(RustTokenizer.from_file(str(path)),
                   model_max_length=int(config.get("model_max_length", MODEL_MAX_LENGTH)))

    def to_hf(self):
        """The same tokenizer as a `transformers.PreTrainedTokenizerFast` (imports transformers)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(
            tokenizer_object=RustTokenizer.from_str(self._tk.to_str()),  # a copy HF may modify
            bos_token=BOS, eos_token=EOS, pad_token=PAD,
            additional_special_tokens=[SYSTEM, USER, ASSISTANT, END, IMAGE],
            chat_template=CHAT_TEMPLATE, model_max_length=self.model_max_length,
            clean_up_tokenization_spaces=False,
        )


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 bytes to printable characters (what the vocabulary
    stores): printable Latin-1 bytes map to themselves, the rest to chr(256 + n)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    out, n = {}, 0
    for b in range(N_BYTES):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(N_BYTES + n)
            n += 1
    return out


_UNICODE_TO_BYTE = {c: b for b, c in bytes_to_unicode().items()}


# ----------------------------------------------------------------------------- stage cache

TOKENIZER_RECIPE_VERSION = 1


def _world_corpus() -> tuple[list[str], list[str]]:
    """Training texts (stories + instruction conversations) and validation stories."""
    from . import data

    def call(f, split):
        return list(f(split=split)) if callable(f) else list(f)

    stories = call(data.world_stories, "train")
    convs = call(data.world_instructions, "train")
    # conversations as plain text (role names and contents), so that the words and formats
    # of chat answers get their own merges; the special tokens themselves are never merged
    chats = ["\n".join(m["content"] for m in c["messages"]) for c in convs]
    val = call(data.world_stories, "validation")
    return stories + chats, val


def _world_fingerprint() -> str:
    """A short hash of a few world samples: changes when the data generator changes, so a
    tokenizer trained on an older world is retrained (cheap: ~40 ms, no full corpus needed)."""
    import hashlib

    from . import data

    sample = [data.world_stories("validation", n=20), data.world_instructions("validation", n=20)]
    return hashlib.sha256(json.dumps(sample, sort_keys=True).encode()).hexdigest()[:16]


def bytes_per_token(tok: Tokenizer, texts: Sequence[str]) -> float:
    """UTF-8 bytes per token over `texts` (higher = better compression)."""
    texts = list(texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tokens = sum(len(ids) for ids in tok.encode_batch(texts))
    return n_bytes / max(n_tokens, 1)


def get_tokenizer(run: str = "default", vocab_size: int = 4096) -> Tokenizer:
    """The course tokenizer of `run`: loaded from runs/<run>/tokenizer/, trained there if missing.

    Trained on the world's training stories and instruction conversations; stage.json records
    vocab_size, bytes per token on the validation stories and the training time.
    """
    stage = run_dir(run) / "tokenizer"
    recipe = {"stage": "tokenizer", "version": TOKENIZER_RECIPE_VERSION, "vocab_size": vocab_size,
              "corpus": "world stories + instructions (train split)",
              "world": _world_fingerprint()}
    if stage_is_current(stage, recipe):
        tok = Tokenizer.load(stage)
        print(f"loaded the tokenizer from {stage} (vocab {tok.vocab_size})", flush=True)
        return tok
    texts, val = _world_corpus()
    mb = sum(len(t) for t in texts) / 1e6
    print(f"training a {vocab_size}-token byte-level BPE on {mb:.1f} MB of world text "
          f"-> {stage} ...", flush=True)
    start = time.perf_counter()
    tok = train_tokenizer(texts, vocab_size=vocab_size)
    seconds = time.perf_counter() - start
    tok.save(stage)
    summary = {"vocab_size": tok.vocab_size, "train_seconds": round(seconds, 2),
               "train_mb": round(mb, 2), "bytes_per_token_val": round(bytes_per_token(tok, val), 3)}
    mark_stage_done(stage, recipe, summary)
    print(f"done in {seconds:.1f} s: vocab {tok.vocab_size}, "
          f"{summary['bytes_per_token_val']:.2f} bytes/token on validation stories", flush=True)
    return tok
