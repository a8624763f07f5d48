"""The vocabulary of the synthetic world, and how generated items are assigned to splits.

Everything the generators say is drawn from the word lists below: named characters (children
and animals, each with pronouns), things with a colour and a size, countable items, places,
feelings, games and weather. Together they give a vocabulary of several hundred words, small
enough that a ~2M-parameter model sees every word many times in a few minutes of training,
rich enough that its text is not a handful of memorisable sentences.

Splits are disjoint *by construction*: an item's split is a function of its content alone
(`split_of(key)`, a keyed BLAKE2b hash of the text that defines it), so an identical story or
question can never land in two splits, whatever seed produced it. Generators walk one seeded
random stream and keep the items whose content hashes into the requested split; the same seed
therefore gives byte-identical output, and a longer request extends a shorter one (prefix
property). The idea is the hash-based split of TFDS/`datasets` "split by key" recipes, used
here on content instead of on an id so that a near-duplicate generator can't leak test items.
"""

from __future__ import annotations

import hashlib
import random

SPLITS = ("train", "validation", "test")
# Percent of the hash space given to each split (train gets the rest).
VALIDATION_PCT, TEST_PCT = 5, 5

# ----------------------------------------------------------------------------- characters

# (name, kind, subject, object, possessive): animals get pronouns too, like in picture books.
CHARACTERS = [
    ("Mia", "girl", "she", "her", "her"), ("Leo", "boy", "he", "him", "his"),
    ("Ava", "girl", "she", "her", "her"), ("Sam", "boy", "he", "him", "his"),
    ("Zoe", "girl", "she", "her", "her"), ("Max", "boy", "he", "him", "his"),
    ("Lily", "girl", "she", "her", "her"), ("Tom", "boy", "he", "him", "his"),
    ("Ella", "girl", "she", "her", "her"), ("Ben", "boy", "he", "him", "his"),
    ("Nora", "girl", "she", "her", "her"), ("Finn", "boy", "he", "him", "his"),
    ("Ruby", "girl", "she", "her", "her"), ("Jack", "boy", "he", "him", "his"),
    ("Ivy", "girl", "she", "her", "her"), ("Owen", "boy", "he", "him", "his"),
    ("Lucy", "girl", "she", "her", "her"), ("Noah", "boy", "he", "him", "his"),
    ("Emma", "girl", "she", "her", "her"), ("Theo", "boy", "he", "him", "his"),
    ("Rosa", "girl", "she", "her", "her"), ("Omar", "boy", "he", "him", "his"),
    ("Maya", "girl", "she", "her", "her"), ("Ravi", "boy", "he", "him", "his"),
    ("Lena", "girl", "she", "her", "her"), ("Kai", "boy", "he", "him", "his"),
    ("Anna", "girl", "she", "her", "her"), ("Hugo", "boy", "he", "him", "his"),
    ("Sara", "girl", "she", "her", "her"), ("Eli", "boy", "he", "him", "his"),
    ("Pip", "fox", "he", "him", "his"), ("Daisy", "rabbit", "she", "her", "her"),
    ("Bruno", "bear", "he", "him", "his"), ("Luna", "cat", "she", "her", "her"),
    ("Rex", "dog", "he", "him", "his"), ("Hazel", "mouse", "she", "her", "her"),
    ("Ollie", "owl", "he", "him", "his"), ("Poppy", "duck", "she", "her", "her"),
    ("Gus", "frog", "he", "him", "his"), ("Willow", "squirrel", "she", "her", "her"),
    ("Coco", "puppy", "she", "her", "her"), ("Toby", "turtle", "he", "him", "his"),
]
ANIMALS = {"fox", "rabbit", "bear", "cat", "dog", "mouse", "owl", "duck", "frog", "squirrel",
           "puppy", "turtle"}
TRAITS = ["little", "kind", "brave", "shy", "clever", "curious", "cheerful", "quiet", "silly",
          "gentle", "busy", "friendly", "happy", "young", "playful", "careful"]

# ----------------------------------------------------------------------------- things

COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white", "black",
          "brown"]
SIZES = ["small", "big", "tiny", "huge", "little", "large"]
# Things a character owns (one of them); each has a spot where it can be left behind.
THINGS = ["ball", "kite", "hat", "box", "cup", "book", "shell", "boat", "drum", "sock",
          "key", "bell", "scarf", "lamp", "car", "spoon", "balloon", "bucket", "blanket",
          "umbrella", "backpack", "train", "robot", "whistle", "crayon", "mitten", "bike",
          "basket", "flag", "ribbon"]
# Countable items: (singular, plural). Counts stay consistent through a story.
ITEMS = [("apple", "apples"), ("cookie", "cookies"), ("marble", "marbles"),
         ("shell", "shells"), ("sticker", "stickers"), ("berry", "berries"),
         ("pebble", "pebbles"), ("coin", "coins"), ("carrot", "carrots"),
         ("crayon", "crayons"), ("acorn", "acorns"), ("feather", "feathers"),
         ("button", "buttons"), ("flower", "flowers"), ("cherry", "cherries"),
         ("leaf", "leaves"), ("candy", "candies"), ("block", "blocks")]

# ----------------------------------------------------------------------------- places

PLACES = ["park", "garden", "kitchen", "beach", "forest", "school", "library", "market",
          "river", "hill", "barn", "playground", "meadow", "bakery", "pond", "yard", "zoo",
          "lake", "village square", "farm", "museum", "station", "harbor", "orchard"]
PLACE_ADJ = ["quiet", "busy", "sunny", "shady", "noisy", "peaceful", "big", "colorful",
             "windy", "lovely", "crowded", "calm"]
SPOTS = ["under a bench", "behind a tree", "next to the door", "under a big leaf",
         "near the fence", "inside an old box", "on a high shelf", "beside a rock",
         "under the table", "in the tall grass", "behind the bushes", "by the gate"]
TIMES = ["One morning", "One sunny day", "One afternoon", "On a rainy day", "One evening",
         "Early one morning", "On a warm summer day", "One cold winter day",
         "On a windy autumn day", "One spring morning", "Last Saturday", "One day"]
WEATHER = ["The sun was shining.", "The sky was blue and clear.", "A soft wind was blowing.",
           "Little clouds floated by.", "The air smelled of flowers.", "Birds sang in the trees.",
           "It was a little cold.", "Everything was wet from the rain."]

# ----------------------------------------------------------------------------- feelings, play

FEELINGS = ["happy", "sad", "proud", "excited", "tired", "scared", "calm", "curious",
            "surprised", "grateful", "worried", "cheerful", "lonely", "glad", "sleepy",
            "brave"]
GOOD_FEELINGS = ["happy", "proud", "excited", "calm", "grateful", "cheerful", "glad"]
GAMES = ["hide and seek", "tag", "catch", "a guessing game", "hopscotch", "a counting game",
         "follow the leader", "a board game", "jump rope", "pirates"]
HOBBIES = ["sing", "draw", "dance", "read books", "climb trees", "run fast", "bake cookies",
           "count stars", "collect stones", "tell jokes", "build things", "swim"]
PAINTED = ["a rainbow", "a big tree", "the sea", "a little house", "the moon", "a dragon",
           "a flower", "a ship"]
SONG_TOPICS = ["the moon", "a happy frog", "the rain", "their best friends", "a sleepy bear",
               "the stars", "a red bus"]
# (the trouble, how the hero helps): the second is formatted with name= and friend=.
HELP_WITH = [("could not reach a high branch", "{name} lifted {friend} up."),
             ("could not open a heavy door", "{name} pushed the door open."),
             ("was stuck in the mud", "{name} pulled {friend} out."),
             ("could not carry a big bag", "{name} helped {friend} carry it."),
             ("lost a shoe", "{name} looked everywhere and found it.")]
MATERIALS = [("a tower", "blocks"), ("a castle", "sand"), ("a fort", "pillows"),
             ("a little house", "sticks"), ("a snowman", "snow"), ("a bridge", "stones"),
             ("a boat", "paper"), ("a nest", "twigs")]
FOODS = ["soup", "bread", "pancakes", "a pie", "a sandwich", "some cake", "rice",
         "a salad", "warm milk", "a big pizza"]
CONNECTIVES = ["Then", "After that", "Later", "Soon", "Next", "A little later",
               "After a while", "Before long", "That afternoon", "Just then", "Soon after",
               "At noon", "Later that day", "After lunch"]
MOVES = ["went", "walked", "ran", "hurried", "skipped", "set off"]
SAYS = ["said", "asked", "shouted", "whispered", "called", "laughed"]

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                "seventeen", "eighteen", "nineteen", "twenty"]


def number_word(k: int) -> str:
    """'three' for 3; digits past twenty (stories keep counts small)."""
    return NUMBER_WORDS[k] if 0 <= k < len(NUMBER_WORDS) else str(k)


def vocabulary() -> set[str]:
    """Every lower-cased word the word lists contain (templates add a few hundred more)."""
    words: set[str] = set()
    lists = [TRAITS, COLORS, SIZES, THINGS, PLACES, PLACE_ADJ, SPOTS, TIMES, WEATHER, FEELINGS,
             GAMES, FOODS, CONNECTIVES, SAYS, NUMBER_WORDS, HOBBIES, PAINTED, SONG_TOPICS, MOVES]
    for lst in lists:
        for phrase in lst:
            words.update(phrase.lower().replace(".", "").split())
    for c in CHARACTERS:
        words.update(w.lower() for w in c)
    for s, p in ITEMS:
        words.update((s, p))
    for a, b in MATERIALS:
        words.update((a + " " + b).split())
    return words


# ----------------------------------------------------------------------------- splits


def split_of(key: str) -> str:
    """The split an item whose defining text is `key` belongs to (a pure function of `key`)."""
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8, person=b"minilib").digest(),
                       "little") % 100
    if h < VALIDATION_PCT:
        return "validation"
    if h < VALIDATION_PCT + TEST_PCT:
        return "test"
    return "train"


def check_split(split: str, allowed: tuple[str, ...] = SPLITS) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {', '.join(allowed)}; got {split!r}")


def check_n(n) -> None:
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        raise ValueError(f"n must be None or a non-negative int, got {n!r}")


def make_rng(kind: str, seed: int) -> random.Random:
    """One seeded stream per (generator, seed): str seeds hash deterministically (SHA-512)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return random.Random(f"minilib-world:{kind}:{seed}")


def take_split(make_item, key_of, split: str, n: int, rng: random.Random,
               max_tries_per_item: int = 400) -> list:
    """Draw items from `make_item(rng)` and keep the first `n` whose key hashes into `split`."""
    out = []
    budget = max(1000, n * max_tries_per_item)
    while len(out) < n:
        budget -= 1
        if budget < 0:  # only a tiny content space could exhaust this
            raise RuntimeError(f"could not draw {n} items for split {split!r}; "
                               "the generator's content space is too small")
        item = make_item(rng)
        if split_of(key_of(item)) == split:
            out.append(item)
    return out
