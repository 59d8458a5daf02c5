"""The action geometry of Frozen Lake, defined once (gymnasium's convention).

    0 LEFT   1 DOWN   2 RIGHT   3 UP          state = row * ncol + col

``DELTAS[a]`` is the (row, col) step of action a; on screen (x right, y down) it is (dcol, drow).
"""

from __future__ import annotations

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3
ACTION_NAMES = ("left", "down", "right", "up")
ACTION_ARROWS = ("←", "↓", "→", "↑")
DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (drow, dcol) of left, down, right, up
N_ACTIONS = len(ACTION_NAMES)
