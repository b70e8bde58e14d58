"""article-categorizer domain package (the Lambda layer).

Everything the Lambda functions need lives here; AWS and OpenAI sit behind small
adapters (`store`, `dlq`, `active_model`, `classifier`) so the logic tests without either.
"""
