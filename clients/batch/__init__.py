"""The T+1 job (paper §5.3): a day's queries re-ranked offline, each result written where the backend reads it."""
