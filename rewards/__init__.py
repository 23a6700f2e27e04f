"""Rewards of the paper (eq. 7-11) for the trainers that fine-tune the checkpoints this project serves.

`paper` holds the totals R = format + task, strict as the paper is (serving reads answers leniently; a reward
does not); `verl` and `trl` adapt them to those trainers' calling conventions; `weights.toml` holds γ1..γ5.
"""
