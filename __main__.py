from speechport.cli import run

run()
