"""Planning a conversion: renaming rules, the Recipe interface, the mapping plan, users' mapping files,
suggestions for unmapped keys, wrapper prefixes, and the cached target model."""
