"""Operations on a whole cloud rather than on one service: backup and restore (``backup.py``)."""
