"""The knowledge base: articles, their retrieval, and their export to Rasa training data."""
