"""Example plugin for sdl-orchestrator: a simulated filter plate reader."""
