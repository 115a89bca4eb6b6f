"""The alerting service: tells home finders at once about vacancies that fit their referrals."""
