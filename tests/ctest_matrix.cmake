# Which suite runs how. Every GPU entry gets MEGREZ_VALIDATION=1 (validation layer plus
# synchronisation validation; any message fails the run).
if(TARGET test-loader)
  add_test(NAME loader COMMAND test-loader)
endif()
