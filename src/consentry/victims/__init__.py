"""Victim hub: cases submitted as hashes only (case number + PIN), partner feedback."""
