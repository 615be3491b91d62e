"""Training machinery shared by every training stage, and the stages themselves."""
