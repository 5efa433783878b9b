"""The Rasa SDK action server: ``python -m rasa_sdk --actions actions`` (``warmline actions``)."""
