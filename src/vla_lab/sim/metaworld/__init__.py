"""The arm world: Meta-World's Sawyer tasks through LeRobot's env factory (``env``), Meta-World's
scripted experts (``expert``) and the task instructions with held-out paraphrases
(``instructions``)."""
