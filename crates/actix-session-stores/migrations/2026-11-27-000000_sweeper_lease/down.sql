DROP TABLE sweeper_lease;
