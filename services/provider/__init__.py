"""The provider service: the write side for providers' settings, vacancies and placements."""
