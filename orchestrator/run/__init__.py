"""Running a campaign: the Campaign object (ask/tell), the steps of one iteration, reconciliation after a crash, consumables and the analysis of spectra."""
