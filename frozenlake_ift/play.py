"""``frozenlake-ift play``: watch a trained policy play, as a GIF drawn by gymnasium's renderer.

    frozenlake-ift play runs/<timestamp> --method ift --member 0 --out ift.gif

Rolls one episode of ``Agent.from_run(run_dir, method, member)`` out in the run's own map
(``Lake-v0``, the gymnasium FrozenLake environment with that map and time limit), renders every
state with ``render_mode="rgb_array"`` (gymnasium's pygame art: ``pip install
"frozenlake_ift[render]"``), adds a caption bar (agent, step, last move, outcome) and writes a
GIF with pillow. ``rollout`` and ``save_gif`` are the two library functions behind it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .agents import Agent, time_limit
from .lakes import ACTION_NAMES

RENDER_EXTRA = "render"
CAPTION_HEIGHT = 22  # pixels of the caption bar under each frame
OUTCOMES = {"goal": "reached the goal", "hole": "fell into a hole", "time limit": "hit the time limit"}
FPS_RANGE = (0.01, 50.0)  # a GIF stores frame delays in 1/100 s from 2 (50 fps) to 65535 (over 10 minutes)
MAX_HOLD = 600.0  # seconds the last frame may stay


def check_fps(fps, what: str = "fps") -> float:
    """A frame rate in ``FPS_RANGE`` (ValueError naming ``what`` otherwise: 0, negative, inf, nan, 1e-300)."""
    lo, hi = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not lo <= fps <= hi:
        raise ValueError(f"{what} must be a number of frames per second in [{lo:g}, {hi:g}] (GIF delays), got {fps!r}")
    return float(fps)


@dataclass
class Rollout:
    """One episode: states[0] is the start; actions[t] moved states[t] -> states[t + 1].

    outcome: "goal", "hole" or "time limit", from the environment's terminated/truncated flags
    and the tile the episode ended on. frames: rgb arrays, one per state, Shape (H, W, 3) uint8.
    """

    states: list[int]
    actions: list[int]
    rewards: list[float]
    terminated: bool
    truncated: bool
    outcome: str
    agent: str
    ncol: int
    max_episode_steps: int | None = None
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def steps(self) -> int:
        return len(self.actions)


@contextlib.contextmanager
def _headless_pygame():
    """Let pygame start without a display (SDL's dummy driver) unless the user chose a driver."""
    saved = {k: os.environ.get(k) for k in ("SDL_VIDEODRIVER", "PYGAME_HIDE_SUPPORT_PROMPT")}
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def require_pygame() -> None:
    """Raise ImportError naming the extra when pygame (gymnasium's rgb_array renderer) is missing."""
    import importlib.util

    if importlib.util.find_spec("pygame") is None:
        raise ImportError(
            f"rendering Frozen Lake frames needs pygame (gymnasium's rgb_array renderer): "
            f'pip install "frozenlake_ift[{RENDER_EXTRA}]"'
        )


def rollout(agent: Agent, seed: int = 0, max_episode_steps: int | None = None, render: bool = True) -> Rollout:
    """One episode of ``agent`` on its own map; frames by gymnasium's rgb_array renderer when render.

    Seeded: the environment is reset with ``seed``, sampled actions come from default_rng(seed).
    """
    if render:
        require_pygame()
    kwargs: dict[str, object] = {"render_mode": "rgb_array"} if render else {}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    rng = np.random.default_rng(seed)
    with _headless_pygame():
        env = agent.make_env(**kwargs)
        try:
            obs, _ = env.reset(seed=int(seed))
            states, actions, rewards, frames = [int(obs)], [], [], [env.render()] if render else []
            terminated = truncated = False
            while not (terminated or truncated):
                a = agent.act(obs, rng)
                obs, r, terminated, truncated, _ = env.step(a)
                states.append(int(obs))
                actions.append(int(a))
                rewards.append(float(r))
                if render:
                    frames.append(env.render())
            desc = np.asarray(env.unwrapped.desc)  # (nrow, ncol) bytes
            tile = desc.reshape(-1)[states[-1]]
            limit = time_limit(env)
        finally:
            env.close()
    outcome = ("goal" if tile == b"G" else "hole") if terminated else "time limit"
    return Rollout(
        states,
        actions,
        rewards,
        bool(terminated),
        bool(truncated),
        outcome,
        agent.name,
        int(desc.shape[1]),
        limit,
        frames,
    )


def _captioned(frame: np.ndarray, text: str):
    """The frame with a caption bar underneath, as a PIL image."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = frame.shape[:2]
    img = Image.new("RGB", (w, h + CAPTION_HEIGHT), (255, 255, 255))
    img.paste(Image.fromarray(np.ascontiguousarray(frame[..., :3])), (0, 0))
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: one bitmap size
        font = ImageFont.load_default()
    ImageDraw.Draw(img).text((4, h + 3), text, fill=(0, 0, 0), font=font)
    return img


def captions(roll: Rollout, greedy: bool) -> list[str]:
    """One caption per frame: agent, step, the move just made, and the outcome on the last frame."""
    mode = "greedy" if greedy else "sampled"
    out = []
    for t in range(len(roll.states)):
        move = f" {ACTION_NAMES[roll.actions[t - 1]]}" if t else ""  # words: pillow's default font has no arrows
        end = f": {OUTCOMES[roll.outcome]}" if t == len(roll.states) - 1 else ""
        if end and roll.outcome == "hole":  # gymnasium draws no agent in a hole: say which one
            end += f" at {divmod(roll.states[-1], roll.ncol)}"
        out.append(f"{roll.agent} {mode}  t={t}{move}{end}")
    return out


def save_gif(
    roll: Rollout, path: str | os.PathLike, greedy: bool = True, fps: float = 4.0, last_frame_hold: float = 1.5
) -> Path:
    """Write the rollout's frames (with captions) as a looping GIF; the last frame stays ``last_frame_hold`` s."""
    from PIL import Image

    from .results import atomic_write

    if not roll.frames:
        raise ValueError("the rollout has no frames: make it with rollout(..., render=True)")
    fps = check_fps(fps)
    if (
        isinstance(last_frame_hold, bool)
        or not isinstance(last_frame_hold, (int, float))
        or not 0 <= last_frame_hold <= MAX_HOLD
    ):
        raise ValueError(f"last_frame_hold must be a number of seconds in [0, {MAX_HOLD:g}], got {last_frame_hold!r}")
    imgs = [
        _captioned(f, c).quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for f, c in zip(roll.frames, captions(roll, greedy), strict=True)
    ]
    ms = max(20, round(1000 / fps))
    durations = [ms] * (len(imgs) - 1) + [max(ms, round(1000 * last_frame_hold))]
    buf = io.BytesIO()
    imgs[0].save(
        buf, format="GIF", save_all=True, append_images=imgs[1:], duration=durations, loop=0, optimize=True, disposal=1
    )
    atomic_write(path, buf.getvalue())
    return Path(path)


# ------------------------------------------------------------------------------ CLI
def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``play`` sub-command on an argparse subparsers object."""
    p = subparsers.add_parser(
        "play",
        help="render one rollout of a trained policy to a GIF",
        description="Roll out one trained policy (method, ensemble member) of a saved run in its gymnasium "
        "FrozenLake environment and write the episode as a GIF (gymnasium's rgb_array renderer; "
        f'needs pygame: pip install "frozenlake_ift[{RENDER_EXTRA}]").',
    )
    p.add_argument("run_dir", help="a run folder written by `frozenlake-ift reproduce` (results.json, params.pt)")
    p.add_argument("--method", default="ift", help="a trained method of the run, or base / star (default: ift)")
    p.add_argument("--member", type=int, default=0, help="ensemble member index, 0..seeds-1 (default: 0)")
    p.add_argument("--out", default=None, help="GIF path (default: RUN_DIR/play-METHOD-MEMBER.gif)")
    p.add_argument("--sample", action="store_true", help="sample actions from pi (default: greedy argmax)")
    p.add_argument("--seed", type=int, default=0, help="environment and sampling seed (default: 0)")
    p.add_argument(
        "--fps", type=float, default=4.0, help=f"frames per second, {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g} (default: 4)"
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="time limit of the episode (default: the environment's, 200 for Lake-v0)",
    )
    p.set_defaults(func=run)
    return p


def check_out_path(out: str | os.PathLike) -> Path:
    """A writable .gif path, or ValueError naming what is wrong with it."""
    path = Path(out)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"--out must end in .gif, got {str(out)!r}")
    if path.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder; give a file name such as {str(path / 'play.gif')!r}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write {str(out)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"cannot write {str(out)!r}: no write permission")
    return path


def run(args) -> int:
    """The ``play`` sub-command; user errors raise ValueError with one line."""
    if args.member < 0:
        raise ValueError(f"--member must be >= 0, got {args.member}")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {args.max_steps}")
    check_fps(args.fps, "--fps")
    out = check_out_path(
        args.out if args.out is not None else Path(args.run_dir) / f"play-{args.method}-{args.member}.gif"
    )
    try:
        require_pygame()
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    agent = Agent.from_run(args.run_dir, args.method, args.member, greedy=not args.sample)
    roll = rollout(agent, seed=args.seed, max_episode_steps=args.max_steps)
    save_gif(roll, out, greedy=agent.greedy, fps=args.fps)
    print(
        f"wrote {out}: {agent.name} ({'greedy' if agent.greedy else 'sampled'}) {OUTCOMES[roll.outcome]} "
        f"after {roll.steps} of at most {roll.max_episode_steps} steps ({len(roll.frames)} frames)"
    )
    return 0


__all__ = [
    "Rollout",
    "add_parser",
    "captions",
    "check_fps",
    "check_out_path",
    "require_pygame",
    "rollout",
    "run",
    "save_gif",
]
