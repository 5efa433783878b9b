"""The bot's own code, loaded by Rasa (it runs in Rasa's environment, so it imports only Rasa and its pins)."""
