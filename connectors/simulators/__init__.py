"""Simulated source systems (数字城管, 拆违, 网格, 来穗, 12345) for the demo and the tests."""
