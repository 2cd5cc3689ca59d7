"""seg-review: the review page, where annotators approve or reject stored segments, the doubtful first."""
