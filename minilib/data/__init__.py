"""Data for the course: the synthetic world (offline default) and loaders for real datasets.

    world_stories        pretraining text                         stories.py
    world_instructions   SFT conversations + check_answer         instructions.py
    world_preferences    chosen/rejected pairs with a flaw        preferences.py
    world_tasks          verifiable tasks + task_reward           tasks.py
    world_scenes         rendered images with captions and Q&A    images.py
    load_*               the same as `datasets.Dataset`s, from the world, local files or the Hub
    cache_tokenized      tokenize once, reuse from the run directory

See data/README.md for what the world contains, split sizes, samples and the local formats.
"""

from .cache import TokenCache, cache_tokenized
from .images import HELD_OUT_COMBOS, SCENE_COLORS, SCENE_SHAPES, render_scene, world_scenes
from .instructions import SYSTEM_PROMPT, check_answer, normalize_answer, world_instructions
from .loaders import (
    NoNetworkError,
    load_corpus,
    load_instructions,
    load_preferences,
    load_tasks,
    load_vqa,
)
from .preferences import FLAWS, world_preferences
from .stories import world_stories
from .tasks import FORMAT_BONUS, task_reward, world_tasks
from .world import SPLITS, split_of

__all__ = [
    "FLAWS", "FORMAT_BONUS", "HELD_OUT_COMBOS", "SCENE_COLORS", "SCENE_SHAPES", "SPLITS",
    "SYSTEM_PROMPT", "NoNetworkError", "TokenCache", "cache_tokenized", "check_answer",
    "load_corpus", "load_instructions", "load_preferences", "load_tasks", "load_vqa",
    "normalize_answer", "render_scene", "split_of", "task_reward", "world_instructions",
    "world_preferences", "world_scenes", "world_stories", "world_tasks",
]
