"""Sweeps on Ray: config, plan, workers, driver, episode records, metrics, progress and outputs
(tau2 Results export, report, SFT export, job submission)."""
