"""Valves: request processing components inserted into container pipelines."""
