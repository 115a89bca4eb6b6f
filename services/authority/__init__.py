"""The authority service: councils' referrals for children who need a home, audited."""
